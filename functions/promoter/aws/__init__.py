"""Adapters: the only code that calls AWS (ECR and its /v2 API, STS, DynamoDB, EventBridge).

Each turns the service's errors into the engine's own exceptions at this boundary, once.
"""
