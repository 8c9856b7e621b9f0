"""Reports of a conversion: JSON, Markdown, terminal summary and HTML."""
