#!/usr/bin/env bash
# The packages of dist/ (scripts/package), installed as a DBA would on a database server: our
# files are removed from the PostgreSQL installation first, then each package is unpacked in an
# empty folder and installed by its own install.sh (or dpkg for the .deb) in an environment with
# no cargo and no rustc on PATH, no HOME and no link to this tree, then checked by pg_regress in a
# fresh cluster. Prints "ok - …" / "not ok - …" and ends with "N passed, M failed".
set -uo pipefail
source "$(dirname "$0")/../integration/lib.sh"
version=$(sed -nE 's/^version = "([^"]+)"/\1/p' Cargo.toml | head -1)
clean_env=(env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8)

remove_ours() {  # every daznode_crm file of the current major's installation
    rm -f "$("$PG_CONFIG" --pkglibdir)/daznode_crm.so" "$("$PG_CONFIG" --sharedir)"/extension/daznode_crm*
}
regress() {  # what pg_regress says, as a check
    local res
    if res=$(run_regress 2>&1); then ok "$1"; else not_ok "$1" "$(tail -40 <<<"$res")"; fi
}

expect_eq "no Rust toolchain in the install environment" \
    "$("${clean_env[@]}" sh -c 'command -v cargo rustc rustup; echo none')" "none"

for major in $PG_MAJORS; do
    use_pg "$major"
    tarball=$REPO_ROOT/dist/daznode_crm-$version-pg$major-linux-x86_64.tar.gz
    if [ ! -f "$tarball" ]; then not_ok "PostgreSQL $major: $tarball exists"; continue; fi
    echo "# PostgreSQL $major: $(basename "$tarball")"
    remove_ours
    work=$(mktemp -d /tmp/daznode_crm-pkg.XXXXXX)
    tar -C "$work" -xzf "$tarball"
    out=$(cd "$work"/daznode_crm-* && "${clean_env[@]}" PG_CONFIG="$PG_CONFIG" ./install.sh 2>&1)
    expect_eq "install.sh puts the library and the scripts where pg_config says" \
        "$(grep -c "installed into PostgreSQL $major" <<<"$out")|$(ls "$("$PG_CONFIG" --pkglibdir)/daznode_crm.so" "$("$PG_CONFIG" --sharedir)/extension/daznode_crm--$version.sql" 2>/dev/null | wc -l)" "1|2"
    regress "pg_regress passes against the files of the package, PostgreSQL $major"
    other=$([ "$major" = 15 ] && echo 16 || echo 15)
    use_pg "$other"
    wrong=$(cd "$work"/daznode_crm-* && "${clean_env[@]}" PG_CONFIG="$PG_CONFIG" ./install.sh 2>&1)
    expect_eq "install.sh refuses another major's pg_config ($other), installs nothing" \
        "$(grep -c "this package is for PostgreSQL $major" <<<"$wrong")" "1"
    use_pg "$major"
    rm -rf "$work"

    if [ "$major" = "$PG_DEFAULT_MAJOR" ]; then
        deb=$REPO_ROOT/dist/postgresql-$major-daznode-crm_${version}_amd64.deb
        echo "# PostgreSQL $major: $(basename "$deb")"
        remove_ours
        out=$("${clean_env[@]}" dpkg -i "$deb" 2>&1)
        expect_eq "the .deb installs with dpkg, its files are Debian's paths" \
            "$(dpkg-query -W -f='${Status}' "postgresql-$major-daznode-crm" 2>&1)|$(dpkg -L "postgresql-$major-daznode-crm" | grep -cE "^($("$PG_CONFIG" --pkglibdir)/daznode_crm.so|$("$PG_CONFIG" --sharedir)/extension/daznode_crm.control)$")" \
            "install ok installed|2"
        regress "pg_regress passes against the .deb, PostgreSQL $major"
        "${clean_env[@]}" dpkg --purge "postgresql-$major-daznode-crm" >/dev/null 2>&1
        expect_eq "dpkg --purge removes it" "$(ls "$("$PG_CONFIG" --sharedir)"/extension/daznode_crm* 2>/dev/null | wc -l)" "0"
    fi
    # Leave the installation as the release build had it: the package's files.
    work=$(mktemp -d /tmp/daznode_crm-pkg.XXXXXX)
    tar -C "$work" -xzf "$tarball"
    (cd "$work"/daznode_crm-* && PG_CONFIG="$PG_CONFIG" ./install.sh >/dev/null)
    rm -rf "$work"
done

summary
