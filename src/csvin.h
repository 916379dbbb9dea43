/* csvin.h: reading a CSV file as dealers send it (SPEC 5.4): encoding, delimiter, header, rows. */
#pragma once
#include "sg.h"

/*
 * Decides the header row. Called for each of the first 10 non-blank records of the file, once
 * per candidate delimiter (';' ',' TAB '|'), with the trimmed UTF-8 cells. Returns true when the
 * record is the header. The first delimiter (in that order) under which some record matches wins.
 * The records are read from the decoded first 256 KiB of the file.
 */
typedef bool (*sg_csv_header_fn)(void *ctx, char **cells, size_t n);

/* Called for each data record after the header: cells are trimmed UTF-8, valid until the call
 * returns (cells[n] is NULL); line is the spreadsheet row. Blank records (no cell with text) are
 * not delivered. n is the count as parsed, so it includes empty trailing cells (Excel's
 * "D1;A;5;;"): callers ignore empty cells past the header's last column rather than count them.
 * Return 0 to go on, non-zero to stop reading (the reader then returns SG_OK with stopped set). */
typedef int (*sg_csv_row_fn)(void *ctx, long line, char **cells, size_t n);

typedef struct {
	const char *charset_label; /* the MIME part's charset, or NULL */
	size_t max_cell_bytes;     /* a cell longer than this (bytes, after decoding) makes the
	                            * file malformed_csv; 0 = 1 MiB. The caller checks the SPEC's
	                            * max_field_length (characters) itself: a row error. */
	sg_csv_header_fn header;   /* NULL: the first non-blank record is the header, under the
	                            * delimiter that splits it into the most cells */
	sg_csv_row_fn row;         /* NULL: rows are only counted */
	void *ctx;
} sg_csv_opts;

/* What the reader found; strings static or owned as marked. */
typedef struct {
	const char *encoding; /* "utf-8", "utf-16le", "utf-16be", "windows-1251", or another label
	                       * GLib's iconv knows (lower case, interned: lives as long as the
	                       * process). An all-ASCII file is "utf-8". */
	bool bom;             /* the file began with a byte-order mark */
	char delimiter;       /* 0 when no header was found */
	long header_line;     /* spreadsheet row of the header */
	long title_rows;      /* non-blank records above the header (warning title_rows_skipped) */
	char **header;        /* the header cells as written (trimmed, empty trailing ones kept),
	                       * owned (g_strfreev) */
	size_t header_n;
	long records;         /* data records delivered to opts.row */
	bool stopped;         /* opts.row asked to stop */
	const char *reason;   /* on SG_EDATA: "bad_encoding", "malformed_csv", "bad_header",
	                       * "not_csv" */
	char *detail;         /* on SG_EDATA: human detail, owned (for bad_header: the first
	                       * non-blank row's cells, comma-separated, as found) */
	long error_line;      /* row of a malformed_csv error (the row the bad record starts on),
	                       * or 0 */
} sg_csv_info;

/*
 * Reads the file at path as a stream (memory does not grow with its size). Returns SG_OK,
 * SG_EDATA (info->reason says why), SG_ENOINPUT, SG_EIO. Fill the info only on return.
 * Reasons: not_csv (ZIP or OLE workbook magic); bad_encoding (a NUL, or bytes invalid in the
 * decided encoding: a BOM decides, else valid UTF-8, else the label when iconv knows it and it
 * does not claim UTF-8/ASCII, else windows-1251); bad_header (no match in the first 10 non-blank
 * records; detail = the first one's cells joined by ", ", empty trailing cells dropped, under
 * the delimiter that splits it widest; "" for a file with no rows); malformed_csv (quoting per
 * RFC 4180, strictly: an unterminated quote, a quote inside an unquoted cell, text after a
 * closing quote; a cell over max_cell_bytes, a record over 16384 cells or over
 * max(4 * max_cell_bytes, 4 MiB)). On SG_EDATA rows may already have been delivered: callers
 * treat the file as all-or-nothing. *err gets "NAME: reason: detail" (NAME = the basename).
 */
sg_status sg_csv_read(const char *path, const sg_csv_opts *opts, sg_csv_info *info, char **err);
/* The same over len bytes at data (an attachment in memory); name stands for the path in the
 * messages. Never SG_ENOINPUT or SG_EIO. */
sg_status sg_csv_read_mem(const char *name, const void *data, size_t len,
			  const sg_csv_opts *opts, sg_csv_info *info, char **err);
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
