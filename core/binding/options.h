/* Options given as Lua tables, described once. A dx_option row says an
 * option's name, kind (and range or words), where it is stored, its flag
 * on the command line and one line of doc; one checker serves every kind,
 * one reader walks a list of rows, and the same list is shown to Lua (the
 * command line derives its flags and --help from it, a spec checks the
 * README's table against it). The server's list is in server_options.c. */
#ifndef DX_OPTIONS_H
#define DX_OPTIONS_H

#include <stddef.h>
#include "binding/compat.h"

typedef enum dx_opt_kind {
    DX_OPT_SECONDS,     /* a number >= 0 (0 usually turns it off) */
    DX_OPT_BYTES,       /* an integer from lo to hi: a size in bytes */
    DX_OPT_INTEGER,     /* an integer from lo to hi: a count */
    DX_OPT_ENUM,        /* one of words; stored as its index */
    DX_OPT_STRING,      /* a non-empty string naming a noun ("file name") */
    DX_OPT_BOOLEAN,     /* any value, taken for its truth */
    DX_OPT_TABLE,       /* a table its own reader checks (tls: ltls.c); its flags
                         * --<flag>-<word> set the keys in words */
    DX_OPT_LIST         /* one of words (a string: "*"), or a table listing strings
                         * (1..n, nothing else), each a noun that item accepts;
                         * stored in a char array as the items, each followed by
                         * '\n' (a word as itself; an empty table as "") */
} dx_opt_kind;

/* How a row's value is stored at base + offset (DX_FIELD picks it). */
enum { DX_FIELD_NONE, DX_FIELD_DOUBLE, DX_FIELD_INT, DX_FIELD_UNSIGNED, DX_FIELD_STRING,
       DX_FIELD_CHARS };

typedef struct dx_option {
    const char *name;
    dx_opt_kind kind;
    size_t offset;              /* where it is stored in the struct read into ... */
    unsigned char ftype;        /* ... as a DX_FIELD_*; DX_FIELD_NONE: checked, not stored */
    unsigned fsize;             /* sizeof the field (DX_FIELD_UNSIGNED: 4 or 8; DX_FIELD_CHARS:
                                 * the room, its NUL included) */
    double lo, hi;              /* BYTES, INTEGER: the range */
    const char *const *words;   /* ENUM: the words, NULL-terminated; TABLE: the keys flags set */
    const char *noun;           /* STRING, TABLE (its flags), LIST (an item): what the value names */
    int (*item)(const char *s, size_t len); /* LIST: 1 when s is an item it may hold; NULL:
                                 * any string without spaces, commas or control characters */
    double def;                 /* no field, BYTES or INTEGER: the default */
    const char *unset;          /* no field and no number: what leaving it out means */
    const char *flag;           /* the command line's flag, NULL for none */
    const char *doc;            /* one line: what it does */
} dx_option;

#define DX_FTYPE(x) _Generic((x), double: DX_FIELD_DOUBLE, int: DX_FIELD_INT, \
    const char *: DX_FIELD_STRING, char *: DX_FIELD_CHARS, default: DX_FIELD_UNSIGNED)

/* The designated initializers of a row stored in field f of struct type T
 * (f may be nested: deflate.mode). */
#define DX_FIELD(T, f) .offset = offsetof(T, f), .ftype = DX_FTYPE(((T *)0)->f), \
    .fsize = sizeof(((T *)0)->f)

/* The number of rows of a list defined as an array. */
#define DX_COUNT(list) (sizeof (list) / sizeof (list)[0])

/* The row of list (n rows) named name, or NULL. */
const dx_option *dx_opt_find(const dx_option *list, size_t n, const char *name);

/* Raises "bad <what> '<prefix>.<name>' (<what was expected>, got <value>)"
 * unless the value at idx suits row o; what is "option" or "route option",
 * prefix names the enclosing table ("tls") or is "". [-0, +0, e] */
void dx_opt_check(lua_State *L, const dx_option *o, int idx, const char *what, const char *prefix);

/* The index in o->words of the ENUM value at idx, after dx_opt_check.
 * [-0, +0, e] */
int dx_opt_word(lua_State *L, const dx_option *o, int idx, const char *what, const char *prefix);

/* Checks the value at idx (nil: nothing happens) and, when o has a field,
 * stores it at base + o->offset (an ENUM as its word's index, a STRING as
 * a pointer that stays valid while the value is reachable, a LIST copied
 * into the field). [-0, +0, e] */
void dx_opt_store(lua_State *L, const dx_option *o, int idx, void *base, const char *what,
                  const char *prefix);

/* Raises "unknown <what> '<prefix>.<key>'" for a key of the table at t
 * that is not the name of one of the n rows. [-0, +0, e] */
void dx_opt_check_keys(lua_State *L, int t, const dx_option *list, size_t n, const char *what,
                       const char *prefix);

/* Reads the table at t (none or nil: nothing) through the n rows: an
 * unknown key or a bad value raises, in the rows' order; values are stored
 * into base. [-0, +0, e] */
void dx_opt_read(lua_State *L, int t, const dx_option *list, size_t n, void *base, const char *what,
                 const char *prefix);

/* Reads t[o->name] like dx_opt_store: for a reader that takes its options
 * one at a time. [-0, +0, e] */
void dx_opt_get(lua_State *L, int t, const dx_option *o, void *base, const char *what,
                const char *prefix);

/* Pushes the n rows as a list of tables { name, kind, min, max, values,
 * noun, default (a LIST's: its word, or a table of its items; nil when
 * empty), unset, flag, doc } (a stored option's default read from
 * defaults, which holds the defaults of the struct read into). [-0, +1, m] */
void dx_opt_push_list(lua_State *L, const dx_option *list, size_t n, const void *defaults);

#endif
