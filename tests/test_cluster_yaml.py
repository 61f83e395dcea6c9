"""cluster.yaml is a valid Ray cluster-launcher file, checked offline against Ray's schema."""

from __future__ import annotations

import copy
from pathlib import Path

import jsonschema
import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

CLUSTER = Path(__file__).resolve().parents[1] / "cluster.yaml"


def load() -> dict:
    return yaml.safe_load(CLUSTER.read_text())


def test_cluster_yaml_validates_against_rays_schema() -> None:
    config = load()
    validate_config(prepare_config(copy.deepcopy(config)))  # what `ray up` checks first
    workers = config["available_node_types"]["gpu_worker"]
    assert workers["min_workers"] == 0 and workers["max_workers"] >= 1
    commands = " ".join(config["setup_commands"])
    assert "pip install" in commands and "raybench" in commands


def test_the_schema_check_catches_mistakes() -> None:
    config = load()
    config["available_node_types"]["gpu_worker"]["min_wokers"] = 1
    with pytest.raises(jsonschema.ValidationError):
        validate_config(prepare_config(copy.deepcopy(config)))


def test_no_secrets_and_a_private_dashboard() -> None:
    text = CLUSTER.read_text().lower()
    for secret in ("aws_secret_access_key", "aws_access_key_id", "password", "token:"):
        assert secret not in text
    assert "--dashboard-host=0.0.0.0" not in text
