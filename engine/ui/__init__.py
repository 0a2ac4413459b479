"""The web gallery served at /ui/: sign-in, the grid of lake items, an item with its
annotations drawn over it. Server-rendered (Jinja2) with a little JavaScript of our own;
docs/ui.md."""
