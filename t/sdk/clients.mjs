// The official SDKs' clients the SDK scripts drive (sdk-formats.mjs,
// sdk-output.mjs): against the test nginx at base, under a location
// prefix, no retries, a 10 s timeout, an API key the gate never checks.

import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';

export function openai(base, prefix) {
    return new OpenAI({ baseURL: base + prefix + '/v1', apiKey: 'not-used',
                        maxRetries: 0, timeout: 10000 });
}

export function anthropic(base, prefix) {
    return new Anthropic({ baseURL: base + prefix, apiKey: 'not-used',
                           maxRetries: 0, timeout: 10000 });
}
