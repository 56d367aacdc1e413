"""OpenAI-compatible providers as data: base URL, auth header, quirks. One entry each."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    api_base: str
    env_key: str | None = None  # environment variable that holds the key, for env-built config
    auth_header: str = "Authorization"
    auth_prefix: str = "Bearer "
    key_required: bool = True
    # Accepts `stream_options.include_usage`; when it does, lockgate always asks for usage
    # so that streams are billed, and strips the usage chunk for clients that did not ask.
    stream_usage: bool = True
    extra_headers: dict[str, str] = field(default_factory=dict)
    # Request fields the provider knows under another name (OpenAI's name -> theirs); the
    # provider's name wins when a request carries both.
    renamed_params: dict[str, str] = field(default_factory=dict)
    default_models: tuple[str, ...] = ()  # served when the config is built from the environment


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            "openai",
            "https://api.openai.com/v1",
            env_key="OPENAI_API_KEY",
            default_models=("gpt-4o-mini", "gpt-4o", "gpt-4.1", "gpt-4.1-mini", "o4-mini"),
        ),
        Profile("vllm", "http://127.0.0.1:8000/v1", key_required=False),
        Profile("ollama", "http://127.0.0.1:11434/v1", key_required=False),
        Profile("llamacpp", "http://127.0.0.1:8080/v1", key_required=False),
        Profile(
            "groq",
            "https://api.groq.com/openai/v1",
            env_key="GROQ_API_KEY",
            default_models=("llama-3.3-70b-versatile",),
        ),
        Profile("together", "https://api.together.xyz/v1", env_key="TOGETHER_API_KEY"),
        Profile(
            "deepseek",
            "https://api.deepseek.com/v1",
            env_key="DEEPSEEK_API_KEY",
            default_models=("deepseek-chat", "deepseek-reasoner"),
        ),
        # Mistral sends usage on its last chunk unasked, and answers 422 to `stream_options`
        # and to `max_completion_tokens`.
        Profile(
            "mistral",
            "https://api.mistral.ai/v1",
            env_key="MISTRAL_API_KEY",
            stream_usage=False,
            renamed_params={"max_completion_tokens": "max_tokens"},
            default_models=("mistral-small-latest", "mistral-large-latest"),
        ),
        Profile(
            "openrouter",
            "https://openrouter.ai/api/v1",
            env_key="OPENROUTER_API_KEY",
            extra_headers={"X-Title": "lockgate"},
        ),
    )
}
