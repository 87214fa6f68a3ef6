// The Vercel AI SDK (`ai` + `@ai-sdk/openai-compatible`) against tokenyard: generateText,
// streamText and a tool call. Reads TOKENYARD_BASE_URL (…/v1), TOKENYARD_API_KEY and
// TOKENYARD_MODEL; prints one JSON object with what came back, for the pytest side to check.
import { createOpenAICompatible } from "@ai-sdk/openai-compatible";
import { generateText, streamText, tool } from "ai";
import { z } from "zod";

const tokenyard = createOpenAICompatible({
  name: "tokenyard",
  baseURL: process.env.TOKENYARD_BASE_URL,
  apiKey: process.env.TOKENYARD_API_KEY,
  includeUsage: true, // ask for the usage chunk (with its `cost`) on streams
});
const model = tokenyard(process.env.TOKENYARD_MODEL ?? "demo-chat");

const generated = await generateText({ model, prompt: "Hello from the AI SDK" });

const stream = streamText({ model, prompt: "Hello streaming AI SDK" });
const pieces = [];
for await (const piece of stream.textStream) pieces.push(piece);

const withTool = await generateText({
  model,
  prompt: "What is the weather in Paris?",
  tools: {
    get_weather: tool({
      description: "The current weather in a city",
      inputSchema: z.object({ city: z.string() }),
    }),
  },
});

console.log(
  JSON.stringify({
    generateText: { text: generated.text, usage: generated.usage },
    streamText: { pieces, usage: await stream.usage },
    toolCall: {
      finishReason: withTool.finishReason,
      calls: withTool.toolCalls.map((c) => ({ name: c.toolName, input: c.input })),
    },
  }),
);
