"""Drives Roboflow's inference-sdk client against a Sightline server for the compatibility tests.

Reads a JSON spec on stdin: {"api_url", "api_key"?, "v0"?, "calls": [{"method", "args"?, "kwargs"?,
"configuration"?}]} and prints a JSON list with each call's result, or {"error", "status",
"message"} when the client raised. The Rust test (tests/tests/inference_sdk.rs) checks the results
against the fixture references.
"""

import dataclasses
import json
import sys

from inference_sdk import InferenceConfiguration, InferenceHTTPClient


def plain(value):
    """Dataclasses (ServerInfo, RegisteredModels) and anything else the SDK returns, as JSON."""
    if dataclasses.is_dataclass(value):
        return plain(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def main():
    spec = json.load(sys.stdin)
    client = InferenceHTTPClient(api_url=spec["api_url"], api_key=spec.get("api_key"))
    if spec.get("v0"):
        client.select_api_v0()
    results = []
    for call in spec["calls"]:
        if "configuration" in call:
            client.configure(InferenceConfiguration(**call["configuration"]))
        method = getattr(client, call["method"])
        try:
            result = method(*call.get("args", []), **call.get("kwargs", {}))
            results.append({"ok": plain(result)})
        except Exception as error:  # the test asserts on what the client raised
            results.append(
                {
                    "error": type(error).__name__,
                    "status": getattr(error, "status_code", None),
                    "message": str(getattr(error, "api_message", error)),
                }
            )
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
