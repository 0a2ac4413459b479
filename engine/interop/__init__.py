"""Results leaving the lake and coming back: export formats, exports and datasets, signed URLs,
drawing, and the Label Studio bridge. Sits between the jobs and the lake: it reads the lake and
writes documents; the API and the jobs call it."""
