"""The official `openai` Python package against a running accm gateway: a plain answer, a streamed one,
one with an image (both ways), and errors. Prints one JSON object of what it saw (the Swift test compares it
with the API's and the embedded pipeline's answers); exits 1 on anything unexpected.

    python3 Tests/Clients/openai_check.py --base-url http://127.0.0.1:PORT/v1 --image PATH --question Q
"""
import argparse
import base64
import json
import sys

import openai


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--image", required=True)
    parser.add_argument("--question", required=True)
    parser.add_argument("--api-key", default="none")
    args = parser.parse_args()

    client = openai.OpenAI(base_url=args.base_url, api_key=args.api_key, max_retries=0, timeout=60)
    seen = {"openai_version": openai.__version__}

    models = client.models.list()
    seen["models"] = [m.id for m in models.data]
    model = seen["models"][0]

    image = "data:image/png;base64," + base64.b64encode(open(args.image, "rb").read()).decode()
    messages = [{"role": "user", "content": [
        {"type": "text", "text": args.question},
        {"type": "image_url", "image_url": {"url": image}},
    ]}]
    knobs = {"accm": {"visual_tokens": 4, "return_candidates": True}}

    # Plain, with the image.
    completion = client.chat.completions.create(model=model, messages=messages, temperature=0, max_tokens=16,
                                                extra_body=knobs)
    extra = completion.model_extra or {}
    seen["plain"] = {
        "text": completion.choices[0].message.content,
        "finish_reason": completion.choices[0].finish_reason,
        "prompt_tokens": completion.usage.prompt_tokens,
        "completion_tokens": completion.usage.completion_tokens,
        "kept_patches": extra.get("accm", {}).get("kept_patches"),
        "caption": extra.get("accm", {}).get("caption"),
    }

    # Streamed, with usage.
    stream = client.chat.completions.create(model=model, messages=messages, temperature=0, max_tokens=16, stream=True,
                                            stream_options={"include_usage": True}, extra_body=knobs)
    pieces, finish, usage = [], None, None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.content:
                pieces.append(choice.delta.content)
            if choice.finish_reason:
                finish = choice.finish_reason
    seen["stream"] = {"text": "".join(pieces), "chunks": len(pieces), "finish_reason": finish,
                      "total_tokens": usage.total_tokens if usage else None}

    # Text only: the vision, caption and selector stages are skipped.
    text_only = client.chat.completions.create(model=model, temperature=0, max_tokens=8,
                                               messages=[{"role": "user", "content": "What color is a cross?"}])
    seen["text_only"] = {"visual_tokens_kept": text_only.usage.model_extra.get("visual_tokens_kept"),
                         "finish_reason": text_only.choices[0].finish_reason}

    # Errors come back as the package's typed exceptions, with the server's message.
    errors = {}
    try:
        client.chat.completions.create(model=model, messages=messages, n=2)
    except openai.BadRequestError as e:
        errors["n"] = {"status": e.status_code, "param": (e.body or {}).get("param"), "message": (e.body or {}).get("message")}
    broken = [{"role": "user", "content": [{"type": "text", "text": args.question},
                                           {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAAAAAA"}}]}]
    try:
        client.chat.completions.create(model=model, messages=broken)
    except openai.BadRequestError as e:
        errors["image"] = {"status": e.status_code, "message": (e.body or {}).get("message")}
    try:
        client.chat.completions.create(model="no-such-model", messages=messages)
    except openai.NotFoundError as e:
        errors["model"] = {"status": e.status_code}
    seen["errors"] = errors
    print(json.dumps(seen))
    if len(errors) != 3:
        print(f"expected three typed errors, got {sorted(errors)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
