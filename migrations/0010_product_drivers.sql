-- Products beyond this database (drivers worker, http, manual) record their completion here
-- too, so that identifiers are released only once every product, whatever its driver, has
-- finished. Earlier rows are the built-in `sql` products.
alter table product_purges
    add column driver text not null default 'sql'
        check (driver in ('sql', 'worker', 'http', 'manual')),
    add column reported_rows bigint check (reported_rows >= 0),
    add column confirmed_by text;
