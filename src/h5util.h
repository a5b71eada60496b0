/* h5util.h: the small HDF5 layer under the checkpoint and run-log modules (internal,
 * not installed). Files open with HDF5's default error printer silenced; every failure
 * becomes an AdStatus whose message names the file, the object and HDF5's own
 * description taken from its error stack. Datasets of numbers are chunked with
 * shuffle + deflate + fletcher32, so a flipped byte on disk is a read error, not a
 * silently wrong value. Strings are variable-length UTF-8 (h5py reads string
 * attributes as str, string datasets as bytes unless through .asstr()).
 *
 * Conventions: `loc` is a file or group id, `name` a link name inside it (no path
 * needed, but "a/b" works). Error codes: AD_ERR_IO when writing, flushing or closing a
 * file fails (a full disk shows up there), AD_ERR_FORMAT when an existing file or
 * object is missing, damaged or of the wrong type or shape, AD_ERR_HDF5 for other
 * library failures, AD_ERR_NOMEM for allocations. Ids are plain hid_t; the caller
 * closes what it opens. The serial library holds one global lock: no concurrency; the
 * error printer is silenced for the thread that opens or creates a file. */
#ifndef AUTODIDACT_H5UTIL_H
#define AUTODIDACT_H5UTIL_H

/* Debian's libhdf5 is configured with the 1.8 API as the default (H5_USE_18_API_DEFAULT
 * in H5pubconf.h), and hdf5.h stops with #error when H5_NO_DEPRECATED_SYMBOLS is defined
 * as well. This layer calls only the numbered names (H5Dopen2, H5Acreate2, H5Gcreate2,
 * H5Eset_auto2, H5Ewalk2, ...), so it drops the macro rather than fail to compile. */
#undef H5_NO_DEPRECATED_SYMBOLS
#include <hdf5.h>

#include "autodidact/common.h"

#define AD_H5_MAX_RANK 8

/* Element types of numeric datasets and attributes; stored little-endian. */
typedef enum {
    AD_H5_F32 = 0, /* float    <-> H5T_IEEE_F32LE */
    AD_H5_F64,     /* double   <-> H5T_IEEE_F64LE */
    AD_H5_U8,      /* uint8_t  <-> H5T_STD_U8LE */
    AD_H5_I32,     /* int32_t  <-> H5T_STD_I32LE */
    AD_H5_I64,     /* int64_t  <-> H5T_STD_I64LE */
    AD_H5_U64,     /* uint64_t <-> H5T_STD_U64LE */
    AD_H5_I8       /* int8_t   <-> H5T_STD_I8LE */
} AdH5Type;

/* Records `code` with the message "<file>:<object>: <what>: <HDF5 description>", where
 * <object> is the path of loc joined with name (name may be NULL) and the description
 * (the outermost and innermost entries of the calling thread's error stack) is left out
 * when the stack is empty. Call it right after the failing HDF5 call: any later HDF5
 * call clears the stack. */
AdStatus ad_h5_fail(AdStatus code, hid_t loc, const char *name, const char *what, ...)
    __attribute__((format(printf, 4, 5)));

/* ---- files ---- */
/* Creates (truncating) an HDF5 file for writing. */
AdStatus ad_h5_create(const char *path, hid_t *file);
/* Creates a file that lives in memory only (core driver, no backing store), growing in
 * steps of about size_hint bytes; `name` identifies it in messages. Take its bytes with
 * ad_h5_mem_image and write them yourself. Use it where a failed write must not reach
 * HDF5: with 1.10.8, once a write to disk fails (disk full), H5Fclose fails, the file id
 * stays open, and the library crashes in its exit handler. */
AdStatus ad_h5_create_mem(const char *name, size_t size_hint, hid_t *file);
/* Flushes an in-memory file and copies its image into *image (malloc'd, free()). */
AdStatus ad_h5_mem_image(hid_t file, void **image, size_t *size);
/* Puts size bytes (a file image) at `path` so that a crash leaves either the old file or
 * the new one: writes "<path>.tmp", fsyncs and closes it (each step checked), renames it
 * over `path` and fsyncs the directory holding `path`. *renamed tells whether `path` now
 * holds the new bytes. On a failure before the rename the temporary file is removed (if
 * it is a regular file: a directory in the way is someone else's) and `path` is
 * untouched; a failure to sync the directory is returned with *renamed = 1. Messages
 * name the file or directory at fault; the caller adds what it was saving. */
AdStatus ad_h5_write_image_atomic(const char *path, const void *image, size_t size,
                                  int *renamed);
/* Opens an existing file; a missing or unreadable file is AD_ERR_IO, a file HDF5
 * cannot open (not HDF5, truncated) is AD_ERR_FORMAT. */
AdStatus ad_h5_open(const char *path, int writable, hid_t *file);
/* Flushes a file opened for writing (checked: buffered write errors surface here). */
AdStatus ad_h5_flush(hid_t file);
/* Flushes (if writable) and closes; both checked. Files are opened with the strong
 * close degree, so objects still open are closed with the file. A negative id is a
 * no-op. */
AdStatus ad_h5_close_file(hid_t file);
/* Closes a group, dataset, attribute, dataspace, datatype or property list, checked.
 * A negative id is a no-op. */
AdStatus ad_h5_close(hid_t id);
/* Closes any id ignoring errors (for cleanup paths that already carry an error). */
void ad_h5_close_quietly(hid_t id);
/* Closes id after work on it that returned s: checked when s is AD_OK (the result is
 * the close's status), quietly otherwise (the result is s). */
AdStatus ad_h5_close_after(hid_t id, AdStatus s);

/* ---- groups and links ---- */
AdStatus ad_h5_group_create(hid_t loc, const char *name, hid_t *group);
AdStatus ad_h5_group_open(hid_t loc, const char *name, hid_t *group);
/* 1 if loc has a link `name`, 0 if not; an error otherwise (AD_ERR_FORMAT). */
AdStatus ad_h5_exists(hid_t loc, const char *name, int *exists);
/* 1 if object obj has an attribute `name`, 0 if not. */
AdStatus ad_h5_attr_exists(hid_t obj, const char *name, int *exists);

/* ---- scalar attributes ----
 * Readers require a scalar (or one-element) attribute of the right class: integers for
 * i64, integers or floats for f64, strings for str. */
AdStatus ad_h5_attr_write_i64(hid_t obj, const char *name, int64_t v);
AdStatus ad_h5_attr_write_u64(hid_t obj, const char *name, uint64_t v);
AdStatus ad_h5_attr_write_f64(hid_t obj, const char *name, double v);
/* Variable-length UTF-8 string. Attributes are limited to 64 KiB in total: use a string
 * dataset for long text. */
AdStatus ad_h5_attr_write_str(hid_t obj, const char *name, const char *s);
AdStatus ad_h5_attr_read_i64(hid_t obj, const char *name, int64_t *v);
AdStatus ad_h5_attr_read_f64(hid_t obj, const char *name, double *v);
/* Reads a variable- or fixed-length string attribute into *out (NUL-terminated, owned
 * by the caller, release with free()). Longer than max_len bytes is AD_ERR_FORMAT. */
AdStatus ad_h5_attr_read_str(hid_t obj, const char *name, size_t max_len, char **out);

/* ---- numeric datasets ----
 * The step under every dataset writer: creates dataset `name` of file type ftype over
 * the dataspace `space` with creation list dcpl (H5P_DEFAULT: contiguous, no filters),
 * writes data (memory type mtype) unless data is NULL, and closes it, all checked.
 * `noun` names it in messages ("cannot create <noun>"). space and dcpl stay the
 * caller's to close. */
AdStatus ad_h5_dataset_write(hid_t loc, const char *name, hid_t ftype, hid_t mtype, hid_t space,
                             hid_t dcpl, const void *data, const char *noun);
/* Writes data (rank dimensions `shape`, row-major) as a new dataset, chunked (about
 * 1 MiB per chunk) with shuffle, deflate and fletcher32; an empty dataset is stored
 * contiguous without filters. */
AdStatus ad_h5_write_array(hid_t loc, const char *name, AdH5Type type, int rank,
                           const hsize_t *shape, const void *data);
/* Reads the rank and dimensions of a dataset (at most max_rank; more is AD_ERR_FORMAT). */
AdStatus ad_h5_array_shape(hid_t loc, const char *name, int max_rank, int *rank,
                           hsize_t *shape);
/* Reads a whole dataset into data, after checking that its element class matches type
 * (integer or float) and that its shape is exactly (rank, shape); a mismatch is
 * AD_ERR_FORMAT naming the dataset, the expected and the found shape. A checksum or
 * decompression failure is AD_ERR_FORMAT naming the dataset. */
AdStatus ad_h5_read_array(hid_t loc, const char *name, AdH5Type type, int rank,
                          const hsize_t *shape, void *data);
/* float32 shorthands of the two above. */
AdStatus ad_h5_write_floats(hid_t loc, const char *name, int rank, const hsize_t *shape,
                            const float *data);
AdStatus ad_h5_read_floats(hid_t loc, const char *name, int rank, const hsize_t *shape,
                           float *data);
/* "(2, 3)": a shape as text for messages, cut to fit cap bytes. */
void ad_h5_shape_text(char *out, size_t cap, int rank, const hsize_t *shape);

/* ---- appendable tables ----
 * A table is a dataset of shape (rows, ncols) whose rows grow without limit (ncols = 0
 * makes it one-dimensional), chunked by chunk_rows rows with the same filters. */
AdStatus ad_h5_table_create(hid_t loc, const char *name, AdH5Type type, hsize_t ncols,
                            hsize_t chunk_rows);
/* Appends nrows rows of ncols values (ncols must match the table). */
AdStatus ad_h5_table_append(hid_t loc, const char *name, AdH5Type type, hsize_t nrows,
                            hsize_t ncols, const void *rows);
AdStatus ad_h5_table_rows(hid_t loc, const char *name, hsize_t *nrows);

/* ---- string datasets ----
 * A scalar variable-length UTF-8 string dataset, for text too long for an attribute. */
AdStatus ad_h5_write_string(hid_t loc, const char *name, const char *s);
/* A one-dimensional (n) dataset of variable-length UTF-8 strings, contiguous and
 * unfiltered; NULL entries are stored as "" (strs may be NULL when n is 0). */
AdStatus ad_h5_write_strings(hid_t loc, const char *name, size_t n, char *const *strs);
/* Reads it into *out (owned by the caller, free()); longer than max_len bytes is
 * AD_ERR_FORMAT (checked before the library allocates). */
AdStatus ad_h5_read_string(hid_t loc, const char *name, size_t max_len, char **out);

#endif
