#!/usr/bin/env bash
# debian-13-test: the debian-13 AMI plus the test instrumentation of
# images/lib/ami-test.sh (a report on the console, a quick Ec2 datasource).
set -euo pipefail
source "$IMAGES_DIR/lib/common.sh"
TEST_NAME=debian-13-test
base=${FLINT_IMAGE_DEBIAN_13:?}/disk.raw
out=$(realpath "$1")
source "$IMAGES_DIR/lib/ami-test.sh"
