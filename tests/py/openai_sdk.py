"""Drives the data plane with the official `openai` SDK; prints one JSON object per check.

Usage: CHECK=name python openai_sdk.py   (env: OPENAI_BASE_URL, OPENAI_API_KEY, MODEL, EMBED_MODEL)
Each check prints what it observed; the Rust test asserts on it. Exceptions are reported as
{"exception": class name, "status": HTTP status, "message": ...}.
"""
import json
import os
import sys
import time

import openai

client = openai.OpenAI(max_retries=0, timeout=30)
MODEL = os.environ.get("MODEL", "chat")


def now_ms():
    return time.time() * 1000.0


def chat():
    r = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "say hello to me"}])
    return {"content": r.choices[0].message.content, "finish_reason": r.choices[0].finish_reason,
            "usage": r.usage.model_dump(include={"prompt_tokens", "completion_tokens", "total_tokens"})}


def stream():
    arrivals, content, usage = [], "", None
    with client.chat.completions.create(model=MODEL, stream=True, stream_options={"include_usage": True},
                                        messages=[{"role": "user", "content": "say hello to me"}]) as s:
        for chunk in s:
            arrivals.append(now_ms())
            if chunk.choices and chunk.choices[0].delta.content:
                content += chunk.choices[0].delta.content
            if chunk.usage:
                usage = chunk.usage.model_dump(include={"prompt_tokens", "completion_tokens"})
    return {"content": content, "arrivals_ms": arrivals, "usage": usage}


def embeddings():
    r = client.embeddings.create(model=os.environ.get("EMBED_MODEL", "embed"), input=["one two three", "four"])
    return {"count": len(r.data), "dims": [len(d.embedding) for d in r.data], "usage": r.usage.prompt_tokens,
            "first": r.data[0].embedding[:2]}


TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
          "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}}}]
if os.environ.get("STRICT_TOOLS"):
    # What strict tools look like (and what Gemini's schema subset refuses).
    TOOLS[0]["function"]["strict"] = True
    TOOLS[0]["function"]["parameters"]["additionalProperties"] = False


def tools():
    """A forced tool call (plain and streamed, the stream naming the function), then the
    tool's answer sent back in a second turn."""
    messages = [{"role": "user", "content": "weather in Paris"}]
    r = client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS, tool_choice="required")
    call = r.choices[0].message.tool_calls[0]
    streamed = {"id": None, "name": None, "arguments": "", "finish": None}
    named = {"type": "function", "function": {"name": "get_weather"}}
    with client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS, stream=True,
                                        tool_choice=named) as s:
        for chunk in s:
            for choice in chunk.choices:
                for d in choice.delta.tool_calls or []:
                    streamed["id"] = streamed["id"] or d.id
                    streamed["name"] = streamed["name"] or (d.function.name if d.function else None)
                    streamed["arguments"] += (d.function.arguments or "") if d.function else ""
                streamed["finish"] = choice.finish_reason or streamed["finish"]
    messages.append(r.choices[0].message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 C"})
    r2 = client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS)
    return {"finish_reason": r.choices[0].finish_reason, "name": call.function.name,
            "arguments": json.loads(call.function.arguments), "id": call.id,
            "usage": r.usage.model_dump(include={"prompt_tokens", "completion_tokens"}),
            "streamed": dict(streamed, arguments=json.loads(streamed["arguments"] or "{}")),
            "second": r2.choices[0].message.content, "second_finish": r2.choices[0].finish_reason}


def models():
    return {"ids": sorted(m.id for m in client.models.list())}


def bad_request():
    client.chat.completions.create(model=MODEL, messages="not a list")


CHECKS = {"chat": chat, "stream": stream, "tools": tools, "embeddings": embeddings, "models": models, "bad_request": bad_request}

if __name__ == "__main__":
    try:
        out = CHECKS[os.environ["CHECK"]]()
    except openai.APIStatusError as e:
        out = {"exception": type(e).__name__, "status": e.status_code, "message": e.message}
    except openai.APIError as e:
        out = {"exception": type(e).__name__, "message": e.message}
    print(json.dumps(out))
