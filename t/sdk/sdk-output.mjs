// Drives the output guard (classify_output) with the official SDKs, as an
// application would: chat completions (raw events, the .stream() helper,
// a whole answer), Responses (raw events, the responses.stream() helper,
// a whole answer) and Anthropic Messages (raw events, messages.stream(),
// a whole answer), each with an answer that passes and one the output
// classifier cuts.  Prints one JSON line per case:
// {"case", "text", "error", "end"} where end is how the answer ended
// (finish_reason, a Response's status and reason, stop_reason).
//
//     node sdk-output.mjs http://127.0.0.1:PORT
//
// /clean and /flagged are the prefixes of two gate locations
// (t/072-sdk-output.t).

import * as clients from './clients.mjs';

const base = process.argv[2];
const question = 'Tell me about the old town.';

const openai = (prefix) => clients.openai(base, prefix);
const anthropic = (prefix) => clients.anthropic(base, prefix);

async function run(name, f) {
    const r = { case: name, text: '', error: null, end: null };

    try {
        await f(r);
    } catch (e) {
        r.error = String(e);
    }

    console.log(JSON.stringify(r));
}

const chat = { model: 'gpt-x', messages: [{ role: 'user', content: question }] };

async function chatEvents(prefix, r) {
    const events = await openai(prefix).chat.completions.create({ ...chat,
                                                                 stream: true });
    for await (const chunk of events) {
        r.text += chunk.choices[0]?.delta?.content ?? '';
        r.end = chunk.choices[0]?.finish_reason ?? r.end;
    }
}

async function chatHelper(prefix, r) {
    const stream = openai(prefix).beta.chat.completions.stream({ ...chat });
    const c = await stream.finalChatCompletion();
    r.text = c.choices[0].message.content;
    r.end = c.choices[0].finish_reason;
}

async function chatCreate(prefix, r) {
    const c = await openai(prefix).chat.completions.create({ ...chat });
    r.text = c.choices[0].message.content;
    r.end = c.choices[0].finish_reason;
}

async function responsesEvents(prefix, r) {
    const events = await openai(prefix).responses.create({
        model: 'gpt-r', input: question, stream: true });
    for await (const ev of events) {
        if (ev.type === 'response.output_text.delta') {
            r.text += ev.delta;
        }
        if (ev.type === 'response.completed') {
            r.end = ev.response.status + ' '
                    + (ev.response.incomplete_details?.reason ?? '-');
        }
    }
}

async function responsesHelper(prefix, r) {
    const stream = openai(prefix).responses.stream({ model: 'gpt-r',
                                                     input: question });
    const res = await stream.finalResponse();
    r.text = res.output.filter((o) => o.type === 'message')
                       .flatMap((o) => o.content)
                       .filter((c) => c.type === 'output_text')
                       .map((c) => c.text).join('');
    r.end = res.status + ' ' + (res.incomplete_details?.reason ?? '-');
}

async function responsesCreate(prefix, r) {
    const res = await openai(prefix).responses.create({ model: 'gpt-r',
                                                        input: question });
    r.text = res.output_text;
    r.end = res.status;
}

const messages = { model: 'claude-x', max_tokens: 64,
                   messages: [{ role: 'user', content: question }] };

async function messagesEvents(prefix, r) {
    const events = await anthropic(prefix).messages.create({ ...messages,
                                                             stream: true });
    for await (const ev of events) {
        if (ev.type === 'content_block_delta' && ev.delta.type === 'text_delta') {
            r.text += ev.delta.text;
        }
        if (ev.type === 'message_delta') {
            r.end = ev.delta.stop_reason;
        }
    }
}

async function messagesHelper(prefix, r) {
    const stream = anthropic(prefix).messages.stream({ ...messages });
    const msg = await stream.finalMessage();
    r.text = await stream.finalText();
    r.end = msg.stop_reason;
}

async function messagesCreate(prefix, r) {
    const msg = await anthropic(prefix).messages.create({ ...messages });
    r.text = msg.content.map((b) => b.text).join('');
    r.end = msg.stop_reason;
}

const cases = {
    'chat-events': chatEvents,
    'chat-helper': chatHelper,
    'chat-create': chatCreate,
    'responses-events': responsesEvents,
    'responses-helper': responsesHelper,
    'responses-create': responsesCreate,
    'messages-events': messagesEvents,
    'messages-helper': messagesHelper,
    'messages-create': messagesCreate,
};

for (const [name, f] of Object.entries(cases)) {
    await run(`${name}-clean`, (r) => f('/clean', r));
    await run(`${name}-flagged`, (r) => f('/flagged', r));
}
