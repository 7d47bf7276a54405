-- Verification codes are hashed with HMAC-SHA256 under CODE_HASH_KEY, a key kept outside the
-- database (activities/code_hash.py). Each challenge records how its code was hashed and, for
-- HMAC, the id of its key, so that a rotated key still checks the codes it hashed. Challenges
-- issued before this migration (and by a worker still running the older code) are 'scrypt',
-- with their salt; they keep being checked that way until they expire. HMAC needs no salt.

alter table verification_challenges
    add column scheme text not null default 'scrypt'
        check (scheme in ('scrypt', 'hmac-sha256')),
    add column key_id text,
    alter column salt drop not null,
    add constraint verification_challenges_hash_inputs check (
        (scheme = 'scrypt' and salt is not null and key_id is null)
        or (scheme = 'hmac-sha256' and key_id is not null)
    );
