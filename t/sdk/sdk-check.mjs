// Drives the gate with the official OpenAI SDK for Node.js, as a chat
// application would: streaming and not, a passed question and a blocked
// one.  Prints one JSON line per case: {"case", "text", "error"}.
//
//     node sdk-check.mjs http://127.0.0.1:PORT
//
// /pass/v1 and /block/v1 are two gate locations (t/070-openai-sdk.t).

import OpenAI from 'openai';

const base = process.argv[2];

async function run(name, path, stream) {
    const client = new OpenAI({ baseURL: base + path, apiKey: 'not-used',
                                maxRetries: 0, timeout: 10000 });
    const request = {
        model: 'gpt-4o-mini',
        messages: [{ role: 'user', content: 'How many daily prayers are there?' }],
    };
    let text = '';

    try {
        if (stream) {
            const events = await client.chat.completions.create({ ...request,
                                                                  stream: true });
            for await (const chunk of events) {
                text += chunk.choices[0]?.delta?.content ?? '';
            }
        } else {
            const completion = await client.chat.completions.create(request);
            text = completion.choices[0].message.content;
        }
        console.log(JSON.stringify({ case: name, text, error: null }));

    } catch (e) {
        console.log(JSON.stringify({ case: name, text, error: String(e) }));
    }
}

await run('stream-pass', '/pass/v1', true);
await run('stream-block', '/block/v1', true);
await run('plain-pass', '/pass/v1', false);
await run('plain-block', '/block/v1', false);
