/*
 * peer_gate.js -- the benchmarks' njs peer (njs 0.7.9, Debian's
 * libnginx-mod-http-js): the module's gate written the way an njs user
 * would, for the comparisons of bench/RESULTS.md, bench/CACHE-RESULTS.md
 * and bench/SPECULATE-RESULTS.md.  The same job as peer_gate.lua, over the
 * same classifier locations and mock:
 *
 *   js_content reads the body; the query is the newest user message, the
 *   context the user and assistant messages before it, or, with Redis
 *   configured, the last "context" messages of the Redis list
 *   chat:<X-Session-Id>, read through a subrequest to a Redis location
 *   (njs 0.7.9 has no TCP socket: peer_redis.lua serves it); with a
 *   verdict cache, the verdicts are looked up and stored through a
 *   subrequest to a cache location (njs 0.7.9 has no shared memory:
 *   peer_gate.lua serves it, over a lua_shared_dict), under the same kind
 *   of key as peer_gate.lua's; the classifiers that can still change the
 *   answer are fired at once (r.subrequest, background and in memory, +
 *   Promise.all: it resolves when ALL have answered, there is no abort);
 *   the first listed positive wins (an error counts as negative); the
 *   block is answered with the canned reply in the client's wire format, a
 *   pass goes to the generation with its body (r.internalRedirect to a
 *   named location).
 *
 * nginx.conf, per gated location:
 *   set $peer_classify "c50 c100";    the classifiers, in priority order
 *   set $peer_cache "verdicts";       the cache's lua_shared_dict, or ""
 *   js_content peer.gate;
 * and in the server: set $peer_time "-"; set $peer_verdict "-"; set
 * $peer_results "-"; (decision ms, verdict, name:outcome,...), location =
 * /_peer/ctx, the Redis read (?key=&start=&stop= -> a JSON array of the
 * list's items), and location = /_peer/cache (peer_gate.lua's
 * cache_serve()).
 *
 * Date.now() is njs's only clock (gettimeofday, whole milliseconds): the
 * decision time is logged in whole ms.
 */

import conf from 'peers.js';
import crypto from 'crypto';


/* the identity in the cache key: every setting that shapes the call */

Object.keys(conf.classifiers).forEach(function(name) {
    var cl = conf.classifiers[name];

    cl.id = crypto.createHash('sha1')
            .update([name, cl.model, cl.prompt, cl.context, cl.max_tokens,
                     cl.positive.join(' '), cl.pass].join('\0'))
            .digest('base64');
});


function refuse(r, status, message) {
    r.headersOut['Content-Type'] = 'application/json';
    r.return(status, JSON.stringify({error: {message: message,
                                             type: 'invalid_request_error'}}));
}


/* a message's text: a string, or the text parts of an array */

function text(content) {
    if (typeof content == 'string') {
        return content;
    }

    if (!Array.isArray(content)) {
        return null;
    }

    return content.filter(function(p) {
        return typeof p == 'object' && p !== null && p.type == 'text'
               && typeof p.text == 'string';
    }).map(function(p) { return p.text; }).join('');
}


/*
 * the newest user message is the query, the user and assistant messages
 * before it the context
 */

function parse(body) {
    var req, msgs, m, i, query, context, t;

    try {
        req = JSON.parse(body);
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

        if (typeof m == 'object' && m !== null && m.role == 'user') {
            query = text(m.content);

            if (!query) {
                return {error: 'no query'};
            }

            context = [];

            msgs.slice(0, i).forEach(function(c) {
                if (typeof c == 'object' && c !== null
                    && (c.role == 'user' || c.role == 'assistant'))
                {
                    t = text(c.content);

                    if (t !== null) {
                        context.push({role: c.role, content: t});
                    }
                }
            });

            return {req: req, query: query, context: context};
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


/* the whole key, each text after its length */

function keyOf(cl, query, s) {
    var parts = [cl.id, query.length, query];

    s.forEach(function(m) {
        parts.push(m.role.length + '\0' + m.role,
                   m.content.length + '\0' + m.content);
    });

    return parts.join('\0');
}


async function cache(r, q) {
    var reply = await r.subrequest('/_peer/cache', {method: 'POST',
                                                    body: JSON.stringify(q)});

    if (reply.status != 200) {
        r.error('peer: verdict cache: ' + reply.status);
        return [];
    }

    return JSON.parse(reply.responseText);
}


function callBody(cl, query, s) {
    var msgs = [{role: 'system', content: cl.prompt}];

    msgs = msgs.concat(s);
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
    var t0, p, list, k, session, context, dict, slices, keys, outcomes,
        calls, replies, store, verdict, results, i, o, v;

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

    if (conf.redis && session) {
        if (session.length > 128 || /[^\w\-.:]/.test(session)) {
            refuse(r, 400, 'bad session id');
            return;
        }

        context = (await redisContext(r, session, k)) || context;
    }

    slices = list.map(function(cl) {
        return context.slice(Math.max(0, context.length - cl.context));
    });

    /*
     * the cached verdicts; the calls that can still change the answer:
     * the misses listed before the first cached positive
     */

    dict = r.variables.peer_cache;
    outcomes = [];
    calls = [];

    if (dict) {
        keys = list.map(function(cl, i) {
            return keyOf(cl, p.query, slices[i]);
        });

        (await cache(r, {dict: dict, get: keys})).forEach(function(v, i) {
            if (v !== null) {
                outcomes[i] = v + '(cached)';
            }
        });
    }

    for (i = 0; i < list.length; i++) {
        if (outcomes[i] === 'positive(cached)') {
            outcomes.length = i + 1;
            break;
        }

        if (outcomes[i] === undefined) {
            calls.push(i);
        }
    }

    replies = await Promise.all(calls.map(function(i) {
        return r.subrequest(list[i].pass,
                            {method: 'POST',
                             body: callBody(list[i], p.query, slices[i])});
    }));

    store = [];

    calls.forEach(function(i, n) {
        o = outcome(list[i], replies[n]);
        outcomes[i] = o;

        if (dict && o != 'error') {
            store.push([keys[i], o]);
        }
    });

    if (store.length) {
        await cache(r, {dict: dict, set: store});
    }

    verdict = null;
    results = [];

    for (i = 0; i < list.length; i++) {
        v = outcomes[i] || 'skipped';
        results.push(list[i].name + ':' + v);

        if (verdict === null && v.indexOf('positive') == 0) {
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
