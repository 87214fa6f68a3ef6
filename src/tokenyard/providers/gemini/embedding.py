"""OpenAI ``/embeddings`` ↔ Gemini ``:batchEmbedContents``.

Wire facts (python-genai ``models.py`` ``_EmbedContentParametersPrivate_to_mldev`` /
``_EmbedContentConfig_to_mldev`` / ``_EmbedContentResponse_from_mldev``; providers.md §4.7):

* Request: ``{"requests": [{"model": "models/<m>", "content": {"parts": [{"text": …}]},
  "outputDimensionality": <dimensions>}]}`` — one request per input, all in one call (the
  SDK also uses ``batchEmbedContents`` on this API, ``embedContent`` takes one content only).
* Response: ``{"embeddings": [{"values": [float, …]}]}``, in input order. The Developer API
  returns no token count (``statistics.token_count`` is "Gemini Enterprise Agent Platform only"),
  so usage is *estimated* with :func:`tokenyard.wire.tokens.estimate_text_tokens` — one token
  per four characters, one per CJK character — and billed from that estimate.
* Gemini has no base64 output: ``encoding_format: base64`` is produced here as little-endian
  float32, as OpenAI does.
* Token-array inputs cannot be sent (Gemini takes text only).
"""

from __future__ import annotations

from tokenyard.errors import UpstreamError, UpstreamRejected
from tokenyard.wire.embeddings import float32_base64
from tokenyard.wire.json import JSONObject
from tokenyard.wire.tokens import estimate_text_tokens
from tokenyard.wire.usage import Usage


def model_path(model: str) -> str:
    """``gemini-embedding-001`` → ``models/gemini-embedding-001``; full resource names
    (``models/…``, ``tunedModels/…``) are kept."""
    return model if "/" in model else f"models/{model}"


def _texts(raw: object) -> list[str]:
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, list) and raw and all(isinstance(item, str) for item in raw):
        return list(raw)
    if isinstance(raw, list) and raw:
        raise UpstreamRejected("this upstream embeds text only, not token arrays")
    raise UpstreamRejected("'input' must be a non-empty string or array of strings")


def embed_request(body: JSONObject, model: str) -> tuple[JSONObject, list[str]]:
    texts = _texts(body.get("input"))
    dimensions = body.get("dimensions")
    if dimensions is not None and not (
        isinstance(dimensions, int) and not isinstance(dimensions, bool) and dimensions >= 1
    ):
        raise UpstreamRejected("'dimensions' must be a positive integer")
    if body.get("encoding_format") not in (None, "float", "base64"):
        raise UpstreamRejected("'encoding_format' must be float or base64")
    name = model_path(model)
    requests = []
    for text in texts:
        item: JSONObject = {"model": name, "content": {"parts": [{"text": text}]}}
        if dimensions is not None:
            item["outputDimensionality"] = dimensions
        requests.append(item)
    return {"requests": requests}, texts


def _vector(entry: object, provider: str) -> list[float]:
    values = entry.get("values") if isinstance(entry, dict) else None
    if not isinstance(values, list) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in values
    ):
        raise UpstreamError(f"provider {provider} sent a malformed embedding", retryable=True)
    return [float(v) for v in values]


def embedding_list(
    doc: JSONObject, texts: list[str], *, provider: str, model: str, as_base64: bool
) -> tuple[JSONObject, Usage]:
    embeddings = doc.get("embeddings")
    if not isinstance(embeddings, list) or len(embeddings) != len(texts):
        raise UpstreamError(
            f"provider {provider} did not return one embedding per input", retryable=True
        )
    data: list[JSONObject] = []
    for index, entry in enumerate(embeddings):
        vector = _vector(entry, provider)
        value: object = vector
        if as_base64:
            value = float32_base64(vector)
        data.append({"object": "embedding", "index": index, "embedding": value})
    tokens = sum(estimate_text_tokens(text) for text in texts)
    body: JSONObject = {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    return body, Usage(prompt_tokens=tokens)
