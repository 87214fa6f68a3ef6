// The official `openai` npm package against tokenyard: a chat completion and a stream.
// Reads TOKENYARD_BASE_URL (…/v1), TOKENYARD_API_KEY and TOKENYARD_MODEL; prints JSON.
import OpenAI from "openai";

const client = new OpenAI({
  baseURL: process.env.TOKENYARD_BASE_URL,
  apiKey: process.env.TOKENYARD_API_KEY,
  maxRetries: 0,
});
const model = process.env.TOKENYARD_MODEL ?? "demo-chat";

const completion = await client.chat.completions.create({
  model,
  messages: [{ role: "user", content: "Hello from Node" }],
});

const stream = await client.chat.completions.create({
  model,
  stream: true,
  stream_options: { include_usage: true },
  messages: [{ role: "user", content: "Hello streaming Node" }],
});
const pieces = [];
let usage = null;
for await (const chunk of stream) {
  if (chunk.choices.length) pieces.push(chunk.choices[0].delta.content ?? "");
  if (chunk.usage) usage = chunk.usage;
}

console.log(
  JSON.stringify({
    chat: { text: completion.choices[0].message.content, usage: completion.usage },
    stream: { pieces, usage },
  }),
);
