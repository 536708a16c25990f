-- Schema version 4: per resource, the objects its driver made (the inventory), so removal
-- deletes exactly what was applied. Resources applied before have none; drivers then find
-- their objects by ownership labels and tracking annotation.
ALTER TABLE resources ADD COLUMN inventory TEXT NOT NULL DEFAULT '[]';
