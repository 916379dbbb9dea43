/* csvin.h: reading a CSV file as dealers send it (SPEC 5.4): encoding, delimiter, header, rows. */
#pragma once
#include "sg.h"

/*
 * Decides the header row. Called for each of the first 10 non-blank records of the file, once
 * per candidate delimiter (';' ',' TAB '|'), with the trimmed UTF-8 cells. Returns true when the
 * record is the header. The first delimiter (in that order) under which some record matches wins.
 */
typedef bool (*sg_csv_header_fn)(void *ctx, char **cells, size_t n);

/* Called for each data record after the header: cells are trimmed UTF-8, valid until the call
 * returns; line is the spreadsheet row. Blank records (no cell with text) are not delivered.
 * Return 0 to go on, non-zero to stop reading (the reader then returns SG_OK with stopped set). */
typedef int (*sg_csv_row_fn)(void *ctx, long line, char **cells, size_t n);

typedef struct {
	const char *charset_label; /* the MIME part's charset, or NULL */
	size_t max_cell_bytes;     /* a cell longer than this (bytes, after decoding) makes the
	                            * file malformed_csv; 0 = 1 MiB. The caller checks the SPEC's
	                            * max_field_length (characters) itself: a row error. */
	sg_csv_header_fn header;
	sg_csv_row_fn row;
	void *ctx;
} sg_csv_opts;

/* What the reader found; strings static or owned as marked. */
typedef struct {
	const char *encoding; /* "utf-8", "utf-16le", "utf-16be", "windows-1251", or another label */
	bool bom;             /* the file began with a byte-order mark */
	char delimiter;       /* 0 when no header was found */
	long header_line;     /* spreadsheet row of the header */
	long title_rows;      /* non-blank records above the header (warning title_rows_skipped) */
	char **header;        /* the header cells as written (trimmed), owned (g_strfreev) */
	size_t header_n;
	long records;         /* data records delivered to opts.row */
	bool stopped;         /* opts.row asked to stop */
	const char *reason;   /* on SG_EDATA: "bad_encoding", "malformed_csv", "bad_header",
	                       * "not_csv" */
	char *detail;         /* on SG_EDATA: human detail, owned (for bad_header: the first
	                       * non-blank row's cells, comma-separated, as found) */
	long error_line;      /* row of a malformed_csv error, or 0 */
} sg_csv_info;

/*
 * Reads the file at path as a stream (memory does not grow with its size). Returns SG_OK,
 * SG_EDATA (info->reason says why), SG_ENOINPUT, SG_EIO. Fill the info only on return.
 */
sg_status sg_csv_read(const char *path, const sg_csv_opts *opts, sg_csv_info *info, char **err);
void sg_csv_info_clear(sg_csv_info *info);

/* Normalises a header name for matching: trimmed, case-folded, ё→е, a trailing ':' dropped. */
char *sg_csv_header_key(const char *name);

/* The number of characters of a UTF-8 cell (for the max_field_length check). */
size_t sg_csv_cell_chars(const char *cell);

/* Writing CSV (output side: exports, errors.csv, batch results). */
typedef struct sg_csv_writer sg_csv_writer;
/*
 * A writer to out in the given encoding ("utf-8" or "windows-1251", "utf-16le"), delimiter and
 * BOM; formula_guard prefixes cells beginning with = + - @ TAB CR with a quote (SPEC 6).
 * Quotes per RFC 4180; line end "\n" or "\r\n".
 */
sg_csv_writer *sg_csv_writer_new(FILE *out, const char *encoding, char delimiter, bool bom,
				 bool formula_guard, const char *eol);
void sg_csv_write_row(sg_csv_writer *w, const char *const *cells, size_t n);
/* Flushes and frees; returns false when a write failed. */
bool sg_csv_writer_close(sg_csv_writer *w);
