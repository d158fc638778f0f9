"""The dashboard's views: each parses its request, asks a read model or an operation,
and renders a template. One module per page."""
