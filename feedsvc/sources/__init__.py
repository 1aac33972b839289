"""Article sources: each turns a place articles live into Articles and Problems."""
