-- What each rack has in its image cache (JSON list of sha256), for the Images page's sync state.
ALTER TABLE racks ADD COLUMN images TEXT;
