// Drives the gate with the official SDKs in every wire format a chat
// client speaks, as an application would: OpenAI Responses
// (responses.create, streamed and not, and the responses.stream() helper
// that rebuilds the Response from its events), Anthropic Messages
// (messages.create, streamed and not, and the messages.stream() helper),
// and OpenAI chat completions asking for the usage chunk.  Each passed
// question and each blocked one; then bad input, which each SDK must
// report as a 400 with the gate's message.  Prints one JSON line per case:
// {"case", "text", "error", "status", "extra"}.
//
//     node sdk-formats.mjs http://127.0.0.1:PORT
//
// /pass and /block are the prefixes of two gate locations
// (t/071-sdk-formats.t).

import * as clients from './clients.mjs';

const base = process.argv[2];
const question = 'How many daily prayers are there?';

const openai = (prefix) => clients.openai(base, prefix);
const anthropic = (prefix) => clients.anthropic(base, prefix);

async function run(name, f) {
    const r = { case: name, text: '', error: null, status: null, extra: null };

    try {
        await f(r);
    } catch (e) {
        r.error = String(e);
        r.status = e.status ?? null;
    }

    console.log(JSON.stringify(r));
}

async function responsesCreate(prefix, r) {
    const res = await openai(prefix).responses.create({ model: 'gpt-r',
                                                        input: question });
    r.text = res.output_text;
    r.extra = `${res.object} ${res.status} ${res.model}`;
}

async function responsesEvents(prefix, r) {
    const events = await openai(prefix).responses.create({
        model: 'gpt-r', stream: true,
        input: [{ role: 'user', content: [{ type: 'input_text', text: question }] }],
    });
    const types = [];
    for await (const ev of events) {
        types.push(ev.type);
        if (ev.type === 'response.output_text.delta') {
            r.text += ev.delta;
        }
    }
    r.extra = types.includes('response.completed') ? 'completed' : types.join(',');
}

async function responsesHelper(prefix, r) {
    const stream = openai(prefix).responses.stream({ model: 'gpt-r',
                                                     input: question });
    const res = await stream.finalResponse();

    /* the helper's Response has no output_text convenience: its parts */
    r.text = res.output.filter((o) => o.type === 'message')
                       .flatMap((o) => o.content)
                       .filter((c) => c.type === 'output_text')
                       .map((c) => c.text).join('');
    r.extra = res.status;
}

async function messagesCreate(prefix, r) {
    const msg = await anthropic(prefix).messages.create({
        model: 'claude-x', max_tokens: 64,
        system: 'You answer questions about prayer.',
        messages: [{ role: 'user', content: question }],
    });
    r.text = msg.content.map((b) => b.text).join('');
    r.extra = `${msg.type} ${msg.role} ${msg.stop_reason} ${msg.model}`;
}

async function messagesEvents(prefix, r) {
    const events = await anthropic(prefix).messages.create({
        model: 'claude-x', max_tokens: 64, stream: true,
        messages: [{ role: 'user', content: [{ type: 'text', text: question }] }],
    });
    let stop = null;
    for await (const ev of events) {
        if (ev.type === 'content_block_delta' && ev.delta.type === 'text_delta') {
            r.text += ev.delta.text;
        }
        if (ev.type === 'message_delta') {
            stop = ev.delta.stop_reason;
        }
    }
    r.extra = stop;
}

async function messagesHelper(prefix, r) {
    const stream = anthropic(prefix).messages.stream({
        model: 'claude-x', max_tokens: 64,
        messages: [{ role: 'user', content: question }],
    });
    const msg = await stream.finalMessage();
    r.text = await stream.finalText();
    r.extra = `${msg.stop_reason} ${msg.usage.output_tokens}`;
}

async function chatUsage(prefix, r) {
    const events = await openai(prefix).chat.completions.create({
        model: 'gpt-x', stream: true, stream_options: { include_usage: true },
        messages: [{ role: 'user', content: question }],
    });
    let usage = null;
    for await (const chunk of events) {
        r.text += chunk.choices[0]?.delta?.content ?? '';
        usage = chunk.usage ?? usage;
    }
    r.extra = usage ? 'usage' : 'no usage';
}

const cases = {
    'responses-create': responsesCreate,
    'responses-events': responsesEvents,
    'responses-helper': responsesHelper,
    'messages-create': messagesCreate,
    'messages-events': messagesEvents,
    'messages-helper': messagesHelper,
    'chat-usage': chatUsage,
};

for (const [name, f] of Object.entries(cases)) {
    await run(`${name}-pass`, (r) => f('/pass', r));
    await run(`${name}-block`, (r) => f('/block', r));
}

await run('responses-bad', async (r) => {
    await openai('/pass').responses.create({ model: 'gpt-r', input: '' });
});

await run('messages-bad', async (r) => {
    await anthropic('/pass').messages.create({
        model: 'claude-x', max_tokens: 64,
        messages: [{ role: 'assistant', content: 'no user turn' }],
    });
});
