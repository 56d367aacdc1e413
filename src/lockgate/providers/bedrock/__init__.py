"""AWS Bedrock: the Converse / ConverseStream adapter and Titan text embeddings.

`client` sends requests (lockgate's own aiohttp pool, SigV4-signed by `auth`); `request`,
`response` and `stream` translate between OpenAI's shapes and Bedrock's; `errors` maps
Bedrock's error types; `embeddings` speaks Titan's InvokeModel body.
"""
