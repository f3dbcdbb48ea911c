#!/usr/bin/env bash
# Writes fresh random secrets for docker-compose.yml, next to this script:
#   compose-secrets.env  scopegate's keys and the Redis URL (env_file of both replicas)
#   compose-redis.env    the Redis password only (env_file of redis)
# Both mode 0600 and git-ignored. An existing file is never overwritten:
# delete both to start over (then also `docker compose down -v`, since Redis
# keeps its data, and restart: sessions and marks of the old keys are useless).
set -euo pipefail
cd "$(dirname "$0")"
for f in compose-secrets.env compose-redis.env; do
    if [[ -e $f ]]; then
        echo "$f exists; not overwriting" >&2
        exit 1
    fi
done
umask 077
hex() { openssl rand -hex "$1"; }
# Hex only: nothing to escape in the Redis URL or in redis.conf.
redis_password=$(hex 32)
cat > compose-secrets.env <<END
# scopegate secrets for docker-compose.yml (made by make-compose-secrets.sh). Never commit.
# Each name is an *_env key of compose-scopegate.toml.
SCOPEGATE_APP_KEY=$(hex 32)
SCOPEGATE_BUSINESS_PRIVATE_KEY=$(hex 24)
SCOPEGATE_SSO_SECURE_KEY=$(hex 24)
SCOPEGATE_APPLICATION_SECRET=$(hex 16)
SCOPEGATE_DEMO_API_KEY=$(hex 16 | tr a-f A-F)
SCOPEGATE_REDIS_URL=redis://:${redis_password}@redis:6379/0
END
cat > compose-redis.env <<END
# The Redis password for docker-compose.yml (made by make-compose-secrets.sh). Never commit.
# The same password is in SCOPEGATE_REDIS_URL in compose-secrets.env.
REDISCLI_AUTH=${redis_password}
END
echo "wrote compose-secrets.env and compose-redis.env (mode 0600)"
