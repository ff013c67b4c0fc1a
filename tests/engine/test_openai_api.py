"""The OpenAI-compatible protocol without a server: which fields our settings become, what a server's schema says
it accepts, and the stream's events (the real server is in tests/test_openai_server.py)."""

import pytest

from studio.engine.text import openai_api as api
from studio.engine.text.settings import TextSettings


def openapi_with(fields: set[str]) -> dict:
    return {"info": {"title": "vLLM API", "version": "0.9"},
            "paths": {"/v1/completions": {"post": {"requestBody": {"content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/CompletionRequest"}}}}}}},
            "components": {"schemas": {"CompletionRequest": {"allOf": [
                {"properties": {f: {} for f in fields}}, {"$ref": "#/components/schemas/Extra"}]},
                "Extra": {"properties": {"repetition_penalty": {}}}}}}


def test_a_servers_schema_says_which_fields_it_accepts():
    fields = api.schema_fields(openapi_with({"prompt", "min_p", "top_k"}), "/v1/completions")
    assert fields == {"prompt", "min_p", "top_k", "repetition_penalty"}
    assert api.schema_fields({"paths": {}}, "/v1/completions") == frozenset()


def test_settings_become_the_fields_the_server_accepts_and_the_rest_is_named():
    info = api.ServerInfo("vLLM", models=("m",), fields=frozenset(api.OPENAI_FIELDS | {"top_k", "min_p",
                                                                                       "repetition_penalty"}))
    settings = TextSettings(top_k=7, min_p=0.1, repetition_penalty=1.2, dry_multiplier=0.8, inspect=True,
                            stop=("\n\n",))
    body, ignored = api.request_body(settings, "Once", "m", 42, info)
    assert body["top_k"] == 7 and body["min_p"] == 0.1 and body["repetition_penalty"] == 1.2
    assert body["seed"] == 42 and body["logprobs"] == api.INSPECT_TOP and body["stop"] == ["\n\n"]
    assert body["prompt"] == "Once" and body["stream"] is True and "dry_multiplier" not in body
    assert ignored == ["dry_multiplier"]  # changed from its default and not sent: said, not silently dropped
    unsupported = info.unsupported()
    assert "vLLM doesn't accept dry_multiplier" in unsupported["dry_multiplier"] and "top_k" not in unsupported


def test_llama_cpp_server_names_and_greedy_and_chat():
    fields = frozenset(api.OPENAI_FIELDS | {"repeat_penalty", "mirostat", "samplers", "dynatemp_range", "top_k"})
    info = api.ServerInfo("llama.cpp server", fields=fields, chat_fields=fields)
    settings = TextSettings(greedy=True, mirostat=True, mode="chat", inspect=True, sampler_order=("min_p",),
                            messages=({"role": "user", "content": "Hi"},))
    body, _ = api.request_body(settings, "Hi", "m", 1, info)
    assert body["temperature"] == 0.0 and body["mirostat"] == 2 and body["repeat_penalty"] == 1.1
    assert body["samplers"][0] == "min_p" and body["messages"] == [{"role": "user", "content": "Hi"}]
    assert body["logprobs"] is True and body["top_logprobs"] == api.INSPECT_TOP
    dynamic = TextSettings(dynamic_temperature=True, dynatemp_low=0.5, dynatemp_high=1.5)
    body, _ = api.request_body(dynamic, "x", "m", 1, info)
    assert body["temperature"] == 1.0 and body["dynatemp_range"] == 0.5


def test_stream_events_and_pieces():
    lines = [": keep-alive", "", 'data: {"choices": [{"text": " a", "logprobs": {"tokens": [" a"], '
             '"top_logprobs": [{" a": -0.5, " the": -1.5}]}}]}', "data: not json",
             'data: {"choices": [{"text": "", "finish_reason": "length"}]}', "data: [DONE]", 'data: {"late": 1}']
    numbering: dict[str, int] = {}
    pieces = [api.read_piece(e, False, numbering) for e in api.server_events(lines)]
    assert [p.text for p in pieces] == [" a", ""] and pieces[1].finish == "length"
    token = pieces[0].tokens[0]
    assert token["token"] == " a" and [c["token"] for c in token["before"]] == [" a", " the"]
    assert token["id"] == token["before"][0]["id"] and token["before"][0]["p"] == pytest.approx(0.60653, abs=1e-4)
    with pytest.raises(api.ServerError, match="out of memory"):
        list(api.server_events(['data: {"error": {"message": "out of memory"}}']))


def test_urls_with_or_without_v1():
    assert api.api_urls("http://h:8080/v1/") == ("http://h:8080", "http://h:8080/v1")
    assert api.api_urls(" http://h:8080 ") == ("http://h:8080", "http://h:8080/v1")
