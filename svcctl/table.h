/* table.h: the human tables of svcctl: rows of text cells rendered as
 * aligned columns (each as wide as its widest cell, in characters, two
 * spaces apart, no trailing blanks), a header row first. Cells are copied
 * and cleaned: a control character (a newline in a check's output) reads
 * as a space, so one row is always one line. Pure: no I/O. */
#ifndef SVCCTL_TABLE_H
#define SVCCTL_TABLE_H

#include <stddef.h>

struct tbl;

/* A table of ncols columns (1..32) named by headers (ncols strings,
 * copied). Returns NULL when out of memory or ncols is out of range;
 * tbl_free frees it. */
struct tbl *tbl_new(size_t ncols, const char *const *headers) __attribute__((warn_unused_result));

/* Add a row of the table's ncols cells (copied; a NULL cell reads "-").
 * Returns 0, or -1 when out of memory (the table is unchanged). */
int tbl_add(struct tbl *t, const char *const *cells) __attribute__((warn_unused_result));

/* Rows added so far (the header not counted). */
size_t tbl_rows(const struct tbl *t);

/* The table as text, each line ending in '\n'. Returns a new string the
 * caller frees, or NULL when out of memory. */
char *tbl_render(const struct tbl *t) __attribute__((warn_unused_result));

/* NULL-safe. */
void tbl_free(struct tbl *t);

#endif
