# Shared helpers for scripts/ and bench/: sourced, never run.
# A throwaway cluster lives in one directory (data, socket, log) owned by postgres, because
# initdb and postgres refuse to run as root.

export PATH="$HOME/.cargo/bin:$PATH"
PG_MAJOR=15
PG_BIN=/usr/lib/postgresql/$PG_MAJOR/bin
PG_CONFIG=$PG_BIN/pg_config
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

log() { printf '\n==> %s\n' "$*"; }

as_postgres() { runuser -u postgres -- "$@"; }

# cluster_start DIR PORT [postgresql.conf lines...]
cluster_start() {
    local dir=$1 port=$2; shift 2
    cluster_stop "$dir"
    rm -rf "$dir"
    mkdir -p "$dir"
    chown postgres:postgres "$dir"
    as_postgres "$PG_BIN/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log"; return 1; }
    {
        echo "port = $port"
        echo "listen_addresses = ''"
        echo "unix_socket_directories = '$dir'"
        for line in "$@"; do echo "$line"; done
    } >>"$dir/data/postgresql.conf"
    as_postgres "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null \
        || { cat "$dir/server.log"; return 1; }
}

cluster_stop() {
    local dir=$1
    if [ -f "$dir/data/postmaster.pid" ]; then
        as_postgres "$PG_BIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
    fi
}

# psql_at DIR PORT DB [psql args...]
psql_at() {
    local dir=$1 port=$2 db=$3; shift 3
    "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -U postgres -d "$db" "$@"
}

# Builds the release library and installs it into the system PostgreSQL: what users run.
install_release() {
    log "building and installing daznode_crm (release) into PostgreSQL $PG_MAJOR"
    (cd "$REPO_ROOT" && cargo metadata --locked --format-version 1 >/dev/null &&
        cargo pgrx install --release --pg-config "$PG_CONFIG" 2>&1 | grep -vE '^\s*(Compiling|Checking)' | tail -5)
}
