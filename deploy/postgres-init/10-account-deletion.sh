#!/bin/sh
# Creates the product's database and its own role (it cannot touch Temporal's databases).
# The postgres image runs /docker-entrypoint-initdb.d/* once, when the data volume is empty;
# on an older volume run these two statements by hand. Temporal's databases `temporal` and
# `temporal_visibility` are created by the temporal-admin-tools job, not here.
set -eu
: "${ACCOUNT_DELETION_DB_PASSWORD:?ACCOUNT_DELETION_DB_PASSWORD is not set}"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    --set=password="$ACCOUNT_DELETION_DB_PASSWORD" <<'SQL'
create role account_deletion login password :'password';
create database account_deletion owner account_deletion;
SQL
