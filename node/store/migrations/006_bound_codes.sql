-- 006: a pairing code may be bound to the one name it enrols (PROFILE.md
-- §P35), so that an admin's name, which carries admin rights (acl.admins),
-- cannot be taken with an ordinary code by whoever pairs first. '' is a
-- code for any name that the hub's other rules allow; codes made before
-- are such codes.
ALTER TABLE pairing_codes ADD COLUMN name TEXT NOT NULL DEFAULT '';
