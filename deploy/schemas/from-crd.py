#!/usr/bin/env python3
"""Writes deploy/schemas/*.json from the upstream CRD definitions of the kinds we deploy.

    .tools/venv/bin/python deploy/schemas/from-crd.py KIND CRD.yaml SOURCE > deploy/schemas/KIND.json

KIND is ScaledObject, TriggerAuthentication or PodMonitor; CRD.yaml the upstream file
(kedacore/keda config/crd/bases/keda.sh_scaledobjects.yaml and keda.sh_triggerauthentications.yaml;
prometheus-operator/prometheus-operator example/prometheus-operator-crd/
monitoring.coreos.com_podmonitors.yaml); SOURCE the words recorded in the schema's $comment
(repository, path, release or commit). The CRD files are not kept in this repository.

What it does to the storage version's openAPIV3Schema:
- drops descriptions and `status`, and the x-kubernetes-* markers;
- x-kubernetes-int-or-string becomes type [integer, string];
- an object with fixed `properties` (not x-kubernetes-preserve-unknown-fields, no
  additionalProperties of its own) gets additionalProperties: false, so a misspelt field fails
  (the API server would silently prune it);
- apiVersion and kind become constants and metadata.name is required;
- REDUCE below removes the properties we do not use, so that using one of them means adding it
  here first (a schema that names a field is one we have read); the $comment lists what was dropped;
- EXTRA adds what the CRD cannot say: the metadata keys of the KEDA triggers we use, taken from the
  scalers' typed metadata (pkg/scalers/rabbitmq_scaler.go, aws_sqs_queue_scaler.go), where an
  unknown key is ignored by KEDA at run time.
"""

import json
import sys

import yaml

API = {
    "ScaledObject": "keda.sh/v1alpha1",
    "TriggerAuthentication": "keda.sh/v1alpha1",
    "PodMonitor": "monitoring.coreos.com/v1",
}

# Property paths (dotted, `[]` for array items) whose listed children are removed.
REDUCE = {
    "TriggerAuthentication": {
        "spec": [
            "awsSecretManager",
            "azureKeyVault",
            "boundServiceAccountToken",
            "filePath",
            "gcpSecretManager",
            "hashiCorpVault",
            "oauth2",
        ],
    },
    "PodMonitor": {
        "spec.podMetricsEndpoints[]": [
            "authorization",
            "basicAuth",
            "bearerTokenSecret",
            "oauth2",
            "proxyConnectHeader",
            "tlsConfig",
        ],
    },
}

# Trigger metadata keys (KEDA reads them as strings); keys read from authParams only (a
# TriggerAuthentication) are not allowed in metadata.
RABBITMQ_KEYS = [
    "queueName", "mode", "queueLength", "value", "activationValue", "host", "hostFromEnv",
    "protocol", "vhostName", "useRegex", "excludeUnacknowledged", "pageSize", "operation",
    "timeout", "unsafeSsl",
]
SQS_KEYS = [
    "queueURL", "queueURLFromEnv", "queueLength", "activationQueueLength", "awsRegion",
    "awsEndpoint", "scaleOnInFlight", "scaleOnDelayed", "identityOwner",
]


def trigger_metadata(trigger_type, keys, required, enums):
    props = {k: {"type": "string"} for k in keys}
    for k, values in enums.items():
        props[k] = {"type": "string", "enum": values}
    return {
        "if": {"properties": {"type": {"const": trigger_type}}, "required": ["type"]},
        "then": {
            "properties": {
                "metadata": {
                    "type": "object",
                    "properties": props,
                    "additionalProperties": False,
                    "required": required,
                }
            }
        },
    }


BOOL = ["true", "false"]
EXTRA_TRIGGERS = [
    trigger_metadata(
        "rabbitmq",
        RABBITMQ_KEYS,
        ["queueName"],
        {
            "mode": ["QueueLength", "MessageRate"],
            "protocol": ["auto", "http", "amqp"],
            "operation": ["sum", "avg", "max"],
            "useRegex": BOOL,
            "excludeUnacknowledged": BOOL,
            "unsafeSsl": BOOL,
        },
    ),
    trigger_metadata(
        "aws-sqs-queue",
        SQS_KEYS,
        [],
        {"scaleOnInFlight": BOOL, "scaleOnDelayed": BOOL, "identityOwner": ["pod", "operator"]},
    ),
]


def convert(node):
    out = {}
    for key, value in node.items():
        if key == "description" or key.startswith("x-kubernetes"):
            continue
        if key == "properties":
            out[key] = {name: convert(child) for name, child in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = convert(value)
        elif key in ("anyOf", "allOf", "oneOf"):
            out[key] = [convert(v) for v in value]
        else:
            out[key] = value
    if node.get("x-kubernetes-int-or-string"):
        out.pop("anyOf", None)
        out["type"] = ["integer", "string"]
    if (
        out.get("type") == "object"
        and "properties" in out
        and "additionalProperties" not in out
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def at(schema, path):
    for part in path.split("."):
        items = part.endswith("[]")
        schema = schema["properties"][part.removesuffix("[]")]
        if items:
            schema = schema["items"]
    return schema


def main():
    kind, crd_path, source = sys.argv[1], sys.argv[2], sys.argv[3]
    with open(crd_path, encoding="utf-8") as f:
        crd = yaml.safe_load(f)
    assert crd["spec"]["names"]["kind"] == kind, f"{crd_path} defines {crd['spec']['names']['kind']}"
    version = next(v for v in crd["spec"]["versions"] if v.get("storage"))
    assert f"{crd['spec']['group']}/{version['name']}" == API[kind]
    schema = convert(version["schema"]["openAPIV3Schema"])
    schema["properties"].pop("status", None)
    schema["properties"]["apiVersion"] = {"const": API[kind]}
    schema["properties"]["kind"] = {"const": kind}
    schema["properties"]["metadata"] = {
        "type": "object",
        "required": ["name"],
        "properties": {"name": {"type": "string", "minLength": 1}},
    }
    schema["required"] = sorted(set(schema.get("required", [])) | {"apiVersion", "kind", "metadata"})
    dropped = []
    for path, names in REDUCE.get(kind, {}).items():
        props = at(schema, path)["properties"]
        for name in names:
            del props[name]
            dropped.append(f"{path}.{name}")
    if kind == "ScaledObject":
        at(schema, "spec.triggers[]")["allOf"] = EXTRA_TRIGGERS
    comment = (
        f"JSON schema of {kind} ({API[kind]}), derived by deploy/schemas/from-crd.py from the "
        f"openAPIV3Schema of {source}: descriptions, status and x-kubernetes-* markers dropped, "
        "int-or-string as [integer, string], additionalProperties: false on every object with "
        "fixed properties."
    )
    if dropped:
        comment += " Reduced to the fields we use; dropped: " + ", ".join(dropped) + "."
    if kind == "ScaledObject":
        comment += (
            " Added: the metadata keys of the rabbitmq and aws-sqs-queue triggers, from KEDA's "
            "pkg/scalers/rabbitmq_scaler.go and aws_sqs_queue_scaler.go (the CRD types metadata "
            "as a string map). The CRD's CEL rule minReplicaCount <= maxReplicaCount is checked "
            "by deploy/check-manifests."
        )
    out = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://txpatterns.invalid/deploy/schemas/{kind}.json",
        "$comment": comment,
        "title": kind,
    }
    out.update(schema)
    json.dump(out, sys.stdout, indent=1, sort_keys=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
