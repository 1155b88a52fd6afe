/* table.c: aligned text columns for svcctl's human output (see table.h). */
#include "table.h"

#include <stdlib.h>
#include <string.h>

#define TBL_COLS_MAX 32
#define TBL_GAP      2 /* spaces between two columns */

struct tbl {
    size_t ncols;
    size_t nrows; /* rows in cells, the header row included */
    size_t cap;   /* rows cells has room for */
    char **cells; /* nrows * ncols strings, owned; row 0 the header */
};

/* Characters of a UTF-8 string: the bytes that do not continue one. */
static size_t tbl_width(const char *s)
{
    size_t w = 0;

    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80)
            w++;
    return w;
}

/* A copy of s (NULL: "-") with control characters made spaces; caller frees. */
static char *tbl_clean(const char *s)
{
    char *c = strdup(s ? s : "-");
    char *p;

    if (!c)
        return NULL;
    for (p = c; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = ' ';
    return c;
}

static int tbl_push(struct tbl *t, const char *const *cells)
{
    char **row;
    size_t i;

    if (t->nrows == t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 8;
        char **grown = realloc(t->cells, cap * t->ncols * sizeof(*grown));

        if (!grown)
            return -1;
        t->cells = grown;
        t->cap = cap;
    }
    row = t->cells + t->nrows * t->ncols;
    for (i = 0; i < t->ncols; i++) {
        row[i] = tbl_clean(cells[i]);
        if (!row[i]) {
            while (i > 0)
                free(row[--i]);
            return -1;
        }
    }
    t->nrows++;
    return 0;
}

struct tbl *tbl_new(size_t ncols, const char *const *headers)
{
    struct tbl *t;

    if (ncols == 0 || ncols > TBL_COLS_MAX)
        return NULL;
    t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->ncols = ncols;
    if (tbl_push(t, headers) != 0) {
        tbl_free(t);
        return NULL;
    }
    return t;
}

int tbl_add(struct tbl *t, const char *const *cells) { return tbl_push(t, cells); }

size_t tbl_rows(const struct tbl *t) { return t->nrows - 1; }

char *tbl_render(const struct tbl *t)
{
    size_t width[TBL_COLS_MAX] = {0};
    size_t r, c, total = 1, len = 0;
    char *out;

    for (r = 0; r < t->nrows; r++)
        for (c = 0; c < t->ncols; c++) {
            size_t w = tbl_width(t->cells[r * t->ncols + c]);

            if (w > width[c])
                width[c] = w;
        }
    /* bytes: each cell, its padding and gap (at most the width in bytes
     * more), a newline per row */
    for (r = 0; r < t->nrows; r++)
        for (c = 0; c < t->ncols; c++)
            total += strlen(t->cells[r * t->ncols + c]) + width[c] + TBL_GAP + 1;
    out = malloc(total);
    if (!out)
        return NULL;
    for (r = 0; r < t->nrows; r++) {
        size_t end = len; /* the line without its trailing blanks */

        for (c = 0; c < t->ncols; c++) {
            const char *cell = t->cells[r * t->ncols + c];
            size_t n = strlen(cell), pad = width[c] - tbl_width(cell);

            memcpy(out + len, cell, n);
            len += n;
            if (n > 0)
                end = len;
            if (c + 1 < t->ncols) {
                memset(out + len, ' ', pad + TBL_GAP);
                len += pad + TBL_GAP;
            }
        }
        len = end;
        out[len++] = '\n';
    }
    out[len] = '\0';
    return out;
}

void tbl_free(struct tbl *t)
{
    size_t i;

    if (!t)
        return;
    for (i = 0; i < t->nrows * t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
    free(t);
}
