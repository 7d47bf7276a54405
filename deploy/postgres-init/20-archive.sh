#!/bin/sh
# Creates the database of the example product `archive` and its own role: another team's
# database on the same server, which the deletion service's role cannot touch (and the
# reverse). Run once, like 10-account-deletion.sh, when the data volume is empty.
set -eu
: "${ARCHIVE_DB_PASSWORD:?ARCHIVE_DB_PASSWORD is not set}"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    --set=password="$ARCHIVE_DB_PASSWORD" <<'SQL'
create role archive login password :'password';
create database archive owner archive;
SQL
