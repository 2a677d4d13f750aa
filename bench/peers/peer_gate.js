/*
 * peer_gate.js -- the benchmark's njs peer (njs 0.7.9, Debian's
 * libnginx-mod-http-js): the module's gate written the way an njs user
 * would, for the comparison in bench/RESULTS.md.  The same job as
 * peer_gate.lua, over the same classifier locations and mock:
 *
 *   js_content reads the body; the query is the newest user message, the
 *   context the messages before it, or the last "context" messages of the
 *   Redis list chat:<X-Session-Id>, read through a subrequest to a Redis
 *   location (njs 0.7.9 has no TCP socket; bench/run serves that location
 *   with peer_redis.lua); every classifier is fired at once
 *   (r.subrequest, background and in memory, + Promise.all: it resolves
 *   when ALL have answered, there is no abort); the first listed positive
 *   wins (an error counts as negative); the block is answered with the
 *   canned reply in the client's wire format, a pass goes to the generation
 *   with its body (r.internalRedirect to a named location).
 *
 * nginx.conf, per gated location:
 *   set $peer_classify "c50 c100";    the classifiers, in priority order
 *   js_content peer.gate;
 * and in the server: js_var $peer_time; js_var $peer_verdict;
 * js_var $peer_results; (decision ms, verdict, name:outcome,...), and
 * location = /_peer/ctx, the Redis read (?key=&start=&stop= -> a JSON
 * array of the list's items).
 *
 * Date.now() is njs's only clock (gettimeofday, whole milliseconds): the
 * decision time is logged in whole ms.
 */

import conf from 'peers.js';


function refuse(r, status, message) {
    r.headersOut['Content-Type'] = 'application/json';
    r.return(status, JSON.stringify({error: {message: message,
                                             type: 'invalid_request_error'}}));
}


/* the newest user message is the query, the messages before it the context */

function parse(text) {
    var req, msgs, m, i;

    try {
        req = JSON.parse(text);
    } catch (e) {
        return {error: 'body is not JSON'};
    }

    if (typeof req != 'object' || req === null
        || !Array.isArray(req.messages))
    {
        return {error: 'body is not a chat request'};
    }

    msgs = req.messages;

    for (i = msgs.length - 1; i >= 0; i--) {
        m = msgs[i];

        if (typeof m == 'object' && m !== null && m.role == 'user'
            && typeof m.content == 'string')
        {
            return {req: req, query: m.content, context: msgs.slice(0, i)};
        }
    }

    return {error: 'no user message'};
}


async function redisContext(r, session, k) {
    var reply, items, context, i, m;

    reply = await r.subrequest('/_peer/ctx', {args: 'key=chat:' + session
                                                    + '&start=-' + k
                                                    + '&stop=-1'});

    if (reply.status != 200) {
        /* fail open, as classify_redis_on_error pass */
        return null;
    }

    try {
        items = JSON.parse(reply.responseText);
    } catch (e) {
        r.error('peer: redis context is not JSON');
        return null;
    }

    context = [];

    for (i = 0; i < items.length; i++) {
        m = items[i];

        if (typeof m == 'object' && m !== null && typeof m.role == 'string'
            && typeof m.content == 'string')
        {
            context.push({role: m.role, content: m.content});
        }
    }

    return context;
}


function callBody(cl, query, context) {
    var msgs = [{role: 'system', content: cl.prompt}];

    msgs = msgs.concat(context.slice(Math.max(0, context.length - cl.context)));
    msgs.push({role: 'user', content: query});

    return JSON.stringify({model: cl.model, temperature: 0,
                           max_tokens: cl.max_tokens, messages: msgs});
}


/* positive, negative or error: the first word of the answer's content */

function outcome(cl, reply) {
    var a, content, word;

    if (reply.status != 200) {
        return 'error';
    }

    try {
        a = JSON.parse(reply.responseText);
        content = a.choices[0].message.content;
    } catch (e) {
        return 'error';
    }

    if (typeof content != 'string') {
        return 'error';
    }

    word = content.match(/^[\s!-\/:-@\[-`{-~]*([^\s!-\/:-@\[-`{-~]+)/);

    if (word && cl.positive.indexOf(word[1].toLowerCase()) >= 0) {
        return 'positive';
    }

    return 'negative';
}


/* the canned reply in the client's wire format, as the module renders it */

function reply(r, cl, req) {
    var model, id, created, head;

    model = JSON.stringify(typeof req.model == 'string' ? req.model
                                                        : 'classify');
    id = 'chatcmpl-classify-' + r.variables.connection + '-'
         + r.variables.connection_requests;
    created = Math.floor(Date.now() / 1000);

    r.status = 200;
    r.headersOut['X-Classify-Verdict'] = cl.name;

    if (req.stream === true) {
        head = 'data: {"id":"' + id + '","object":"chat.completion.chunk",'
               + '"created":' + created + ',"model":' + model
               + ',"choices":[{"index":0,"delta":';

        r.headersOut['Content-Type'] = 'text/event-stream';
        r.headersOut['Cache-Control'] = 'no-cache';
        r.sendHeader();
        r.send(head + '{"role":"assistant","content":""}'
               + ',"finish_reason":null}]}\n\n'
               + head + '{"content":' + JSON.stringify(cl.reply) + '}'
               + ',"finish_reason":null}]}\n\n'
               + head + '{},"finish_reason":"stop"}]}\n\n'
               + 'data: [DONE]\n\n');
        r.finish();
        return;
    }

    r.headersOut['Content-Type'] = 'application/json';
    r.return(200, '{"id":"' + id + '","object":"chat.completion","created":'
                  + created + ',"model":' + model + ',"choices":[{"index":0,'
                  + '"message":{"role":"assistant","content":'
                  + JSON.stringify(cl.reply) + '},"finish_reason":"stop"}],'
                  + '"usage":{"prompt_tokens":0,"completion_tokens":0,'
                  + '"total_tokens":0}}');
}


async function gate(r) {
    var t0, p, list, k, session, context, replies, verdict, results, i, o;

    if (r.method != 'POST') {
        r.headersOut['Allow'] = 'POST';
        refuse(r, 405, 'method not allowed: use POST');
        return;
    }

    /* js_content has read the body before calling this */
    t0 = Date.now();

    if (r.requestText === undefined) {
        refuse(r, 400, 'no body in memory');
        return;
    }

    p = parse(r.requestText);

    if (p.error) {
        refuse(r, 400, p.error);
        return;
    }

    list = r.variables.peer_classify.split(' ').map(function(name) {
        return conf.classifiers[name];
    });

    k = 0;

    for (i = 0; i < list.length; i++) {
        k = Math.max(k, list[i].context);
    }

    context = p.context;
    session = r.headersIn['X-Session-Id'];

    if (session) {
        if (session.length > 128 || /[^\w\-.:]/.test(session)) {
            refuse(r, 400, 'bad session id');
            return;
        }

        context = (await redisContext(r, session, k)) || context;
    }

    replies = await Promise.all(list.map(function(cl) {
        return r.subrequest(cl.pass, {method: 'POST',
                                      body: callBody(cl, p.query, context)});
    }));

    verdict = null;
    results = [];

    for (i = 0; i < list.length; i++) {
        o = outcome(list[i], replies[i]);
        results.push(list[i].name + ':' + o);

        if (o == 'positive' && verdict === null) {
            verdict = list[i];
        }
    }

    r.variables.peer_time = String(Date.now() - t0);
    r.variables.peer_verdict = verdict ? verdict.name : 'pass';
    r.variables.peer_results = results.join(',');

    if (verdict) {
        reply(r, verdict, p.req);
        return;
    }

    r.internalRedirect(conf.generation);
}


export default {gate};
