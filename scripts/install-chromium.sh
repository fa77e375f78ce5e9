#!/bin/sh
# The report test renders a page in headless Chromium; install it where this machine allows
# (root with apt), and otherwise say so: that test is then skipped, and only that one.
command -v chromium >/dev/null 2>&1 && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing Chromium for the report test (apt-get install chromium)..."
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
    >/tmp/txpatterns-chromium-install.log 2>&1 \
    || echo "Could not install Chromium (see /tmp/txpatterns-chromium-install.log); the report screenshot test will be skipped."
else
  echo "Chromium is not installed; the report screenshot test will be skipped (Debian: apt-get install chromium)."
fi
exit 0
