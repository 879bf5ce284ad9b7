"""What the template's tests and benchmarks drive: one module per real component.

render      the two template engines, the questions and their default answers
processes   commands, prerequisites, loopback HTTP, waiting for something to happen
engine      the suite's own Docker engine and the docker CLI
standins    stand-in base images built in that engine (also a command)
debian      this machine's Debian mirror (also a command, for the shell prerequisites)
git         repositories with a fixed identity, set up in one call
containers  images, containers and compose projects of a generated service
kubernetes  kubectl, kustomize and API schemas for the generated manifests (no cluster)
pipeline    the generated CI files, and the GitLab pipeline run by gitlab-ci-local
redis       a throwaway redis-server (the sccache redis backend's shared cache)
service     the generated service (or another server) as a process on this machine
releases    the template as a git repository with two release tags (the update tests)
update      services generated at one release, edited as a team would, updated to the next
"""

from __future__ import annotations

import os
from pathlib import Path

TEMPLATE_DIR = Path(__file__).resolve().parents[1]
# Under CI=true a missing prerequisite fails instead of skipping (harness.processes.require).
IN_CI = os.environ.get("CI", "").lower() == "true"
