"""Media in OpenAI content parts → Gemini ``Part`` objects (``inlineData`` / ``fileData``).

Wire facts (providers.md §4.2; python-genai ``types.Part``, ``types.Blob``, ``types.FileData``):

* ``inlineData {mimeType, data}`` carries base64 bytes: OpenAI ``data:`` URLs are split into
  both halves, the payload is forwarded as is (never decoded here).
* ``fileData {fileUri, mimeType}`` names a file Google fetches itself: File API URIs
  (``https://generativelanguage.googleapis.com/…/files/…``) and ``gs://`` objects. Both fields
  are *required* in the SDK's ``FileData``.
* Arbitrary ``http(s)://`` URLs: providers.md says the native API does not fetch them and
  the gateway must download them; Google's January 2026 announcement ("external URLs (public
  / signed)", not for the Gemini 2.0 family) says it now does. So the adapter downloads them
  before translating (:func:`inline_remote_images`, through the SSRF-guarded
  ``providers.image_fetch``) and sends the bytes as ``inlineData``; built with
  ``external_image_urls=True`` it forwards https URLs as ``fileData`` for Google to fetch
  instead. Translation itself stays synchronous: a URL that reaches it undownloaded (the
  provider's ``images.fetch`` is off) is refused.
"""

from __future__ import annotations

import mimetypes
from urllib.parse import urlsplit

from tokenyard.errors import UpstreamRejected
from tokenyard.providers.image_fetch import ImageFetcher
from tokenyard.wire.images import parse_data_url
from tokenyard.wire.json import JSONObject

_FILE_API_HOST = "generativelanguage.googleapis.com"
_AUDIO_MIME = {"wav": "audio/wav", "mp3": "audio/mp3"}


def _google_fetchable(url: str) -> bool:
    if url.startswith("gs://"):
        return True
    parts = urlsplit(url)
    return parts.scheme == "https" and parts.hostname == _FILE_API_HOST


def _guess_mime(url: str, default: str) -> str:
    guessed, _ = mimetypes.guess_type(urlsplit(url).path)
    return guessed or default


def _remote(url: object, external_urls: bool) -> bool:
    """A URL the gateway must download for Google (not data, not Google's own storage)."""
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        return False
    return not (_google_fetchable(url) or (external_urls and url.startswith("https://")))


def _image_urls(body: JSONObject, external_urls: bool) -> list[tuple[JSONObject, str]]:
    """The image parts of user messages whose URL must be downloaded, with that URL."""
    found = []
    messages = body.get("messages")
    for message in messages if isinstance(messages, list) else ():
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        content = message.get("content")
        for part in content if isinstance(content, list) else ():
            if isinstance(part, dict) and part.get("type") == "image_url":
                image = part.get("image_url")
                url = image.get("url") if isinstance(image, dict) else image
                if isinstance(url, str) and _remote(url, external_urls):
                    found.append((part, url))
    return found


async def inline_remote_images(
    body: JSONObject, fetcher: ImageFetcher, *, external_urls: bool
) -> JSONObject:
    """``body`` with every image URL Google cannot fetch replaced by a ``data:`` URL of the
    downloaded bytes (a copy; the body itself is left alone). Without such URLs, ``body``."""
    wanted = _image_urls(body, external_urls)
    if not wanted:
        return body
    images = await fetcher.fetch(url for _, url in wanted)
    replaced = {id(part): images[url].data_url() for part, url in wanted}
    return {**body, "messages": [_with_inlined(m, replaced) for m in body["messages"]]}


def _with_inlined(message: object, replaced: dict[int, str]) -> object:
    if not isinstance(message, dict) or not isinstance(message.get("content"), list):
        return message
    content: list[object] = message["content"]
    if not any(id(part) in replaced for part in content):
        return message
    return {**message, "content": [_inlined(part, replaced) for part in content]}


def _inlined(part: object, replaced: dict[int, str]) -> object:
    data_url = replaced.get(id(part))
    if data_url is None or not isinstance(part, dict):
        return part
    image = part.get("image_url")
    details = image if isinstance(image, dict) else {}
    return {**part, "image_url": {**details, "url": data_url}}


def image_part(image_url: object, *, external_urls: bool) -> JSONObject:
    """An OpenAI ``image_url`` value (``{"url": …}`` or a bare string) as a Gemini part."""
    url = image_url.get("url") if isinstance(image_url, dict) else image_url
    if not isinstance(url, str) or not url:
        raise UpstreamRejected("image_url parts need a url")
    inline = parse_data_url(url)
    if inline is not None:
        mime, data = inline
        return {"inlineData": {"mimeType": mime, "data": data}}
    if _google_fetchable(url) or (external_urls and url.startswith("https://")):
        return {"fileData": {"fileUri": url, "mimeType": _guess_mime(url, "image/jpeg")}}
    raise UpstreamRejected(
        "this Gemini upstream does not take image URLs: send the image inline as a base64 "
        "data URL (data:image/png;base64,...)"
    )


def audio_part(input_audio: object) -> JSONObject:
    """An OpenAI ``input_audio`` value ``{"data": <base64>, "format": "wav"|"mp3"}``."""
    if not isinstance(input_audio, dict) or not isinstance(input_audio.get("data"), str):
        raise UpstreamRejected("input_audio parts need base64 data")
    fmt = str(input_audio.get("format", "")).lower()
    mime = _AUDIO_MIME.get(fmt)
    if mime is None:
        raise UpstreamRejected(f"unsupported input_audio format {fmt!r} (wav or mp3)")
    return {"inlineData": {"mimeType": mime, "data": input_audio["data"]}}


def file_part(file: object) -> JSONObject:
    """An OpenAI ``file`` value: only inline ``file_data`` (a base64 data URL) can be sent."""
    data = file.get("file_data") if isinstance(file, dict) else None
    inline = parse_data_url(data) if isinstance(data, str) else None
    if inline is None:
        raise UpstreamRejected(
            "file parts must carry file_data as a base64 data URL for this upstream"
        )
    mime, payload = inline
    return {"inlineData": {"mimeType": mime, "data": payload}}
