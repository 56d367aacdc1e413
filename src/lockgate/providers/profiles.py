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
    # Where the endpoints live under `api_base`; `{model}` is replaced by the (URL-quoted)
    # upstream model name for providers that put it in the path.
    chat_path: str = "/chat/completions"
    embed_path: str = "/embeddings"
    # A query parameter that carries the deployment's `api_version` (None: not versioned).
    version_param: str | None = None
    default_version: str | None = None
    # `api_version` values that name a whole URL surface (a path prefix) instead of a query
    # parameter value; on such a surface the model travels in the body only.
    version_surfaces: dict[str, str] = field(default_factory=dict)

    def endpoints(self, api_version: str | None) -> tuple[str, str, dict[str, str]]:
        """Chat path, embeddings path and query parameters for a configured version."""
        version = api_version or self.default_version
        prefix = self.version_surfaces.get(version or "")
        if prefix is not None:
            return f"{prefix}/chat/completions", f"{prefix}/embeddings", {}
        query = {self.version_param: version} if self.version_param and version else {}
        return self.chat_path, self.embed_path, query


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
        # Azure OpenAI: one URL per deployment (the deployment's `model` is the Azure
        # deployment name), a dated `api-version`, the key in `api-key`. `api_version: v1`
        # selects the v1 surface ({api_base}/openai/v1/..., no version parameter).
        Profile(
            "azure",
            "",
            auth_header="api-key",
            auth_prefix="",
            chat_path="/openai/deployments/{model}/chat/completions",
            embed_path="/openai/deployments/{model}/embeddings",
            version_param="api-version",
            default_version="2024-10-21",
            version_surfaces={"v1": "/openai/v1"},
        ),
        Profile(
            "openrouter",
            "https://openrouter.ai/api/v1",
            env_key="OPENROUTER_API_KEY",
            extra_headers={"X-Title": "lockgate"},
        ),
    )
}
