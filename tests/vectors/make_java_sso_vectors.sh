#!/bin/sh
# Mints tests/vectors/sso_java.json with the JDK-only port of the vendor's Java
# SSO TokenGenerator (java/SsoVectors.java). Needs javac/java 17+; run from
# anywhere. The output is committed; the Rust tests need no Java.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
javac -encoding UTF-8 -d "$tmp" "$here/java/SsoVectors.java"
java -cp "$tmp" SsoVectors > "$tmp/sso_java.json"
mv "$tmp/sso_java.json" "$here/sso_java.json"
echo "wrote $here/sso_java.json"
