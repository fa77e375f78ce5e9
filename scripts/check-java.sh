#!/bin/sh
# Fails with install instructions unless a Java 17+ runtime is on PATH (Spark needs one).
if ! command -v java >/dev/null 2>&1; then
  echo "txpatterns needs Java 17 or newer (Spark runs on it), and 'java' is not on PATH."
  echo "Install it: sudo apt-get install openjdk-17-jre-headless   (Debian/Ubuntu)"
  echo "            brew install openjdk@17                         (macOS)"
  exit 1
fi
version=$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n 1)
if [ -z "$version" ] || [ "$version" -lt 17 ]; then
  echo "txpatterns needs Java 17 or newer; 'java' on PATH is version ${version:-unknown}."
  echo "Install it: sudo apt-get install openjdk-17-jre-headless, then put it first on PATH or set JAVA_HOME."
  exit 1
fi
