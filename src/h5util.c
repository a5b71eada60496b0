/* h5util.c: checked HDF5 calls for the checkpoint and run-log modules (see h5util.h):
 * files and the atomic write of their images, groups, scalar attributes, filtered
 * numeric datasets, appendable tables and string datasets, each failure turned into a
 * message with HDF5's own description. It knows no layout: what goes where is the
 * business of the modules above it. */
#include "h5util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum {
    CHUNK_BYTES = 1 << 20, /* target size of one chunk of a fixed-size dataset */
    DEFLATE_LEVEL = 4,
    DESC_LEN = 512,        /* HDF5 error description kept in a message */
    WHERE_LEN = 1024       /* "<file>:<object>" */
};

/* ---------------------------------------------------------------- errors */

typedef struct {
    char outer[DESC_LEN / 2 - 64]; /* the API-level description */
    char inner[DESC_LEN / 2 + 32]; /* the most specific description */
    int n;
} StackDesc;

static herr_t walk_cb(unsigned n, const H5E_error2_t *e, void *data) {
    StackDesc *d = data;
    const char *desc = e->desc && e->desc[0] ? e->desc : NULL;
    char minor[128] = "";
    if (!desc && H5Eget_msg(e->min_num, NULL, minor, sizeof minor) > 0) desc = minor;
    if (!desc) return 0;
    if (d->n == 0) snprintf(d->outer, sizeof d->outer, "%s", desc);
    snprintf(d->inner, sizeof d->inner, "%s", desc);
    d->n++;
    (void)n;
    return 0;
}

/* The calling thread's HDF5 error stack as "outer: inner" (or "" if empty). */
static void stack_describe(char *out, size_t cap) {
    StackDesc d;
    memset(&d, 0, sizeof d);
    out[0] = '\0';
    if (H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, walk_cb, &d) < 0 || d.n == 0) return;
    if (d.n == 1 || strcmp(d.outer, d.inner) == 0)
        snprintf(out, cap, "%s", d.inner);
    else
        snprintf(out, cap, "%s: %s", d.outer, d.inner);
}

/* "<file name>:<object path>" for loc/name. */
static void where(hid_t loc, const char *name, char *out, size_t cap) {
    char path[WHERE_LEN / 2] = "", file[WHERE_LEN / 2] = "?";
    if (loc >= 0) {
        if (H5Iget_name(loc, path, sizeof path) < 0) path[0] = '\0';
        if (H5Fget_name(loc, file, sizeof file) < 0) snprintf(file, sizeof file, "?");
    }
    size_t pl = strlen(path);
    if (!name)
        snprintf(out, cap, "%s:%s", file, pl ? path : "/");
    else if (pl == 0 || path[pl - 1] == '/')
        snprintf(out, cap, "%s:%s%s", file, path, name);
    else
        snprintf(out, cap, "%s:%s/%s", file, path, name);
}

static AdStatus fail_at(AdStatus code, const char *place, const char *desc, const char *what) {
    if (desc && desc[0]) return ad_fail(code, "%s: %s: %s", place, what, desc);
    return ad_fail(code, "%s: %s", place, what);
}

AdStatus ad_h5_fail(AdStatus code, hid_t loc, const char *name, const char *what, ...) {
    char desc[DESC_LEN], place[WHERE_LEN], text[512];
    stack_describe(desc, sizeof desc); /* first: the calls in where() clear the stack */
    where(loc, name, place, sizeof place);
    va_list ap;
    va_start(ap, what);
    vsnprintf(text, sizeof text, what, ap);
    va_end(ap);
    return fail_at(code, place, desc, text);
}

/* ---------------------------------------------------------------- types */

/* How an AdH5Type is held in memory (native) and stored (little-endian), and its size. */
typedef struct {
    hid_t mem, file;
    size_t size;
} TypeIds;

static TypeIds type_ids(AdH5Type t) {
    switch (t) {
    case AD_H5_F32: return (TypeIds){H5T_NATIVE_FLOAT, H5T_IEEE_F32LE, 4};
    case AD_H5_F64: return (TypeIds){H5T_NATIVE_DOUBLE, H5T_IEEE_F64LE, 8};
    case AD_H5_U8: return (TypeIds){H5T_NATIVE_UINT8, H5T_STD_U8LE, 1};
    case AD_H5_I32: return (TypeIds){H5T_NATIVE_INT32, H5T_STD_I32LE, 4};
    case AD_H5_I64: return (TypeIds){H5T_NATIVE_INT64, H5T_STD_I64LE, 8};
    case AD_H5_U64: return (TypeIds){H5T_NATIVE_UINT64, H5T_STD_U64LE, 8};
    case AD_H5_I8: return (TypeIds){H5T_NATIVE_INT8, H5T_STD_I8LE, 1};
    }
    return (TypeIds){-1, -1, 1};
}

static hid_t mem_type(AdH5Type t) { return type_ids(t).mem; }
static hid_t file_type(AdH5Type t) { return type_ids(t).file; }

static int is_float_type(AdH5Type t) { return t == AD_H5_F32 || t == AD_H5_F64; }

/* A variable-length string type of charset cset (the caller closes it). */
static hid_t vlen_string_type(H5T_cset_t cset) {
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0) return -1;
    if (H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, cset) < 0) {
        H5Tclose(t);
        return -1;
    }
    return t;
}

void ad_h5_shape_text(char *out, size_t cap, int rank, const hsize_t *shape) {
    size_t n = (size_t)snprintf(out, cap, "(");
    for (int i = 0; i < rank && n < cap; i++)
        n += (size_t)snprintf(out + n, cap - n, "%s%llu", i ? ", " : "",
                              (unsigned long long)shape[i]);
    if (n < cap) snprintf(out + n, cap - n, ")");
}

/* ---------------------------------------------------------------- files */

static hid_t make_fapl(void) {
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0) return -1;
    if (H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) < 0) {
        H5Pclose(fapl);
        return -1;
    }
    return fapl;
}

/* Creates (truncating) file `name`: on disk when increment is 0, else in memory (core
 * driver, no backing store) growing in steps of increment bytes. */
static AdStatus create_file(const char *name, size_t increment, hid_t *file) {
    const char *kind = increment ? "in-memory HDF5 file" : "HDF5 file";
    char desc[DESC_LEN];
    *file = -1;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t fapl = make_fapl();
    if (fapl >= 0 && increment && H5Pset_fapl_core(fapl, increment, 0) < 0) {
        H5Pclose(fapl);
        fapl = -1;
    }
    if (fapl < 0) {
        stack_describe(desc, sizeof desc);
        return ad_fail(AD_ERR_HDF5, "cannot create %s %s: %s", kind, name, desc);
    }
    hid_t f = H5Fcreate(name, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    if (f < 0) stack_describe(desc, sizeof desc);
    H5Pclose(fapl);
    if (f < 0)
        return ad_fail(increment ? AD_ERR_HDF5 : AD_ERR_IO, "cannot create %s %s: %s", kind, name,
                       desc);
    *file = f;
    return AD_OK;
}

AdStatus ad_h5_create(const char *path, hid_t *file) { return create_file(path, 0, file); }

AdStatus ad_h5_create_mem(const char *name, size_t size_hint, hid_t *file) {
    return create_file(name, size_hint < (1u << 20) ? (1u << 20) : size_hint, file);
}

AdStatus ad_h5_mem_image(hid_t file, void **image, size_t *size) {
    *image = NULL;
    *size = 0;
    AdStatus st = ad_h5_flush(file);
    if (st != AD_OK) return st;
    ssize_t n = H5Fget_file_image(file, NULL, 0);
    if (n <= 0) return ad_h5_fail(AD_ERR_HDF5, file, NULL, "cannot size the file image");
    void *buf = ad_malloc((size_t)n, "HDF5 file image");
    if (!buf) return AD_ERR_NOMEM;
    if (H5Fget_file_image(file, buf, (size_t)n) != n) {
        free(buf);
        return ad_h5_fail(AD_ERR_HDF5, file, NULL, "cannot copy the file image");
    }
    *image = buf;
    *size = (size_t)n;
    return AD_OK;
}

/* Writes buf to path (created or truncated), then fsyncs and closes it, all checked. */
static AdStatus write_synced(const char *path, const void *buf, size_t size) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return ad_fail(AD_ERR_IO, "cannot create %s: %s", path, strerror(errno));
    const char *p = buf;
    while (size > 0) {
        ssize_t n = write(fd, p, size);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            int e = n < 0 ? errno : EIO;
            close(fd);
            return ad_fail(AD_ERR_IO, "cannot write %s: %s", path, strerror(e));
        }
        p += n;
        size -= (size_t)n;
    }
    if (fsync(fd) != 0) {
        int e = errno;
        close(fd);
        return ad_fail(AD_ERR_IO, "cannot sync %s: %s", path, strerror(e));
    }
    if (close(fd) != 0) return ad_fail(AD_ERR_IO, "cannot close %s: %s", path, strerror(errno));
    return AD_OK;
}

/* fsync(2) of a directory. */
static AdStatus fsync_dir(const char *path) {
    int fd = open(path, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return ad_fail(AD_ERR_IO, "cannot open directory %s to sync it: %s", path,
                               strerror(errno));
    if (fsync(fd) != 0) {
        int e = errno;
        close(fd);
        return ad_fail(AD_ERR_IO, "cannot sync directory %s: %s", path, strerror(e));
    }
    if (close(fd) != 0) return ad_fail(AD_ERR_IO, "cannot close directory %s: %s", path,
                                       strerror(errno));
    return AD_OK;
}

/* The directory holding `path` ("." for a bare name, "/" for "/name"), malloc'd. */
static char *parent_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    size_t n = slash ? (size_t)(slash - path) : 1;
    if (slash && n == 0) n = 1; /* "/name" */
    char *d = ad_malloc(n + 1, "directory name");
    if (!d) return NULL;
    if (slash) memcpy(d, path, n);
    else d[0] = '.';
    d[n] = '\0';
    return d;
}

/* Both names are allocated before anything is written, so that running out of memory
 * leaves no temporary file behind. */
AdStatus ad_h5_write_image_atomic(const char *path, const void *image, size_t size,
                                  int *renamed) {
    *renamed = 0;
    size_t n = strlen(path);
    char *tmp = ad_malloc(n + 5, "temporary file name");
    char *dir = parent_dir(path);
    AdStatus s = tmp && dir ? AD_OK : AD_ERR_NOMEM;
    if (s == AD_OK) {
        memcpy(tmp, path, n);
        memcpy(tmp + n, ".tmp", 5);
        s = write_synced(tmp, image, size);
        if (s == AD_OK && rename(tmp, path) != 0)
            s = ad_fail(AD_ERR_IO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
        if (s != AD_OK) {
            struct stat sb;
            if (lstat(tmp, &sb) == 0 && S_ISREG(sb.st_mode)) unlink(tmp);
        } else {
            *renamed = 1;
            s = fsync_dir(dir);
        }
    }
    free(tmp);
    free(dir);
    return s;
}

AdStatus ad_h5_open(const char *path, int writable, hid_t *file) {
    char desc[DESC_LEN];
    *file = -1;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    int fd = open(path, writable ? O_RDWR : O_RDONLY);
    if (fd < 0) return ad_fail(AD_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    struct stat sb;
    int regular = fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode);
    close(fd);
    if (!regular) return ad_fail(AD_ERR_IO, "cannot open %s: not a regular file", path);
    hid_t fapl = make_fapl();
    if (fapl < 0) {
        stack_describe(desc, sizeof desc);
        return ad_fail(AD_ERR_HDF5, "cannot open HDF5 file %s: %s", path, desc);
    }
    hid_t f = H5Fopen(path, writable ? H5F_ACC_RDWR : H5F_ACC_RDONLY, fapl);
    if (f < 0) stack_describe(desc, sizeof desc);
    H5Pclose(fapl);
    if (f < 0)
        return ad_fail(AD_ERR_FORMAT, "%s is not a readable HDF5 file (damaged, truncated or "
                       "of another format): %s", path, desc);
    *file = f;
    return AD_OK;
}

AdStatus ad_h5_flush(hid_t file) {
    if (H5Fflush(file, H5F_SCOPE_LOCAL) < 0)
        return ad_h5_fail(AD_ERR_IO, file, NULL, "cannot flush");
    return AD_OK;
}

AdStatus ad_h5_close_file(hid_t file) {
    if (file < 0) return AD_OK;
    char name[WHERE_LEN / 2] = "?", desc[DESC_LEN];
    if (H5Fget_name(file, name, sizeof name) < 0) snprintf(name, sizeof name, "?");
    unsigned intent = 0;
    if (H5Fget_intent(file, &intent) < 0) {
        stack_describe(desc, sizeof desc);
        H5Fclose(file);
        return ad_fail(AD_ERR_HDF5, "cannot close HDF5 file %s: %s", name, desc);
    }
    if ((intent & H5F_ACC_RDWR) && H5Fflush(file, H5F_SCOPE_LOCAL) < 0) {
        stack_describe(desc, sizeof desc);
        H5Fclose(file);
        return ad_fail(AD_ERR_IO, "cannot flush HDF5 file %s: %s", name, desc);
    }
    if (H5Fclose(file) < 0) {
        stack_describe(desc, sizeof desc);
        return ad_fail(AD_ERR_IO, "cannot close HDF5 file %s: %s", name, desc);
    }
    return AD_OK;
}

AdStatus ad_h5_close(hid_t id) {
    if (id < 0) return AD_OK;
    H5I_type_t kind = H5Iget_type(id);
    if (kind == H5I_FILE) return ad_h5_close_file(id);
    char place[WHERE_LEN], desc[DESC_LEN];
    int named = kind == H5I_GROUP || kind == H5I_DATASET || kind == H5I_ATTR;
    if (named) where(id, NULL, place, sizeof place);
    herr_t r;
    switch (kind) {
    case H5I_GROUP: r = H5Gclose(id); break;
    case H5I_DATASET: r = H5Dclose(id); break;
    case H5I_ATTR: r = H5Aclose(id); break;
    case H5I_DATASPACE: r = H5Sclose(id); break;
    case H5I_DATATYPE: r = H5Tclose(id); break;
    case H5I_GENPROP_LST: r = H5Pclose(id); break;
    default: return ad_fail(AD_ERR_INTERNAL, "ad_h5_close: id %lld is not closable", (long long)id);
    }
    if (r >= 0) return AD_OK;
    stack_describe(desc, sizeof desc);
    if (named) return fail_at(AD_ERR_IO, place, desc, "cannot close");
    return ad_fail(AD_ERR_HDF5, "cannot close an HDF5 id: %s", desc);
}

void ad_h5_close_quietly(hid_t id) {
    if (id < 0) return;
    switch (H5Iget_type(id)) {
    case H5I_FILE: H5Fclose(id); break;
    case H5I_GROUP: H5Gclose(id); break;
    case H5I_DATASET: H5Dclose(id); break;
    case H5I_ATTR: H5Aclose(id); break;
    case H5I_DATASPACE: H5Sclose(id); break;
    case H5I_DATATYPE: H5Tclose(id); break;
    case H5I_GENPROP_LST: H5Pclose(id); break;
    default: break;
    }
}

AdStatus ad_h5_close_after(hid_t id, AdStatus s) {
    if (s != AD_OK) {
        ad_h5_close_quietly(id);
        return s;
    }
    return ad_h5_close(id);
}

/* ---------------------------------------------------------------- groups */

AdStatus ad_h5_group_create(hid_t loc, const char *name, hid_t *group) {
    *group = H5Gcreate2(loc, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (*group < 0) return ad_h5_fail(AD_ERR_IO, loc, name, "cannot create group");
    return AD_OK;
}

AdStatus ad_h5_group_open(hid_t loc, const char *name, hid_t *group) {
    *group = -1;
    int exists;
    AdStatus st = ad_h5_exists(loc, name, &exists);
    if (st != AD_OK) return st;
    if (!exists) return ad_h5_fail(AD_ERR_FORMAT, loc, name, "missing group");
    *group = H5Gopen2(loc, name, H5P_DEFAULT);
    if (*group < 0) return ad_h5_fail(AD_ERR_FORMAT, loc, name, "cannot open group");
    return AD_OK;
}

AdStatus ad_h5_exists(hid_t loc, const char *name, int *exists) {
    htri_t r = H5Lexists(loc, name, H5P_DEFAULT);
    *exists = r > 0;
    if (r < 0) return ad_h5_fail(AD_ERR_FORMAT, loc, name, "cannot look up");
    return AD_OK;
}

AdStatus ad_h5_attr_exists(hid_t obj, const char *name, int *exists) {
    htri_t r = H5Aexists(obj, name);
    *exists = r > 0;
    if (r < 0) return ad_h5_fail(AD_ERR_FORMAT, obj, NULL, "cannot look up attribute %s", name);
    return AD_OK;
}

/* ---------------------------------------------------------------- attributes */

/* Creates (replacing any old one) a scalar attribute and writes *buf. */
static AdStatus attr_write(hid_t obj, const char *name, hid_t ftype, hid_t mtype,
                           const void *buf) {
    AdStatus st = AD_OK;
    hid_t space = -1, attr = -1;
    htri_t old = H5Aexists(obj, name);
    if (old < 0 || (old > 0 && H5Adelete(obj, name) < 0)) {
        st = ad_h5_fail(AD_ERR_IO, obj, NULL, "cannot replace attribute %s", name);
        goto done;
    }
    space = H5Screate(H5S_SCALAR);
    if (space < 0) {
        st = ad_h5_fail(AD_ERR_HDF5, obj, NULL, "cannot make a dataspace for attribute %s", name);
        goto done;
    }
    attr = H5Acreate2(obj, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT);
    if (attr < 0) {
        st = ad_h5_fail(AD_ERR_IO, obj, NULL, "cannot create attribute %s", name);
        goto done;
    }
    if (H5Awrite(attr, mtype, buf) < 0) {
        st = ad_h5_fail(AD_ERR_IO, obj, NULL, "cannot write attribute %s", name);
        goto done;
    }
    hid_t a = attr;
    attr = -1;
    if (H5Aclose(a) < 0) st = ad_h5_fail(AD_ERR_IO, obj, NULL, "cannot close attribute %s", name);
done:
    ad_h5_close_quietly(attr);
    ad_h5_close_quietly(space);
    return st;
}

AdStatus ad_h5_attr_write_i64(hid_t obj, const char *name, int64_t v) {
    return attr_write(obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &v);
}

AdStatus ad_h5_attr_write_u64(hid_t obj, const char *name, uint64_t v) {
    return attr_write(obj, name, H5T_STD_U64LE, H5T_NATIVE_UINT64, &v);
}

AdStatus ad_h5_attr_write_f64(hid_t obj, const char *name, double v) {
    return attr_write(obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &v);
}

AdStatus ad_h5_attr_write_str(hid_t obj, const char *name, const char *s) {
    hid_t t = vlen_string_type(H5T_CSET_UTF8);
    if (t < 0) return ad_h5_fail(AD_ERR_HDF5, obj, NULL, "cannot make a string type for attribute %s", name);
    AdStatus st = attr_write(obj, name, t, t, &s);
    H5Tclose(t);
    return st;
}

/* Opens attribute `name` of obj, checks that it holds one element, and returns it with
 * its file type and type class. */
static AdStatus attr_open_scalar(hid_t obj, const char *name, hid_t *attr, hid_t *ftype,
                                 H5T_class_t *cls) {
    *attr = *ftype = -1;
    int exists;
    AdStatus st = ad_h5_attr_exists(obj, name, &exists);
    if (st != AD_OK) return st;
    if (!exists) return ad_h5_fail(AD_ERR_FORMAT, obj, NULL, "missing attribute %s", name);
    *attr = H5Aopen(obj, name, H5P_DEFAULT);
    if (*attr < 0) return ad_h5_fail(AD_ERR_FORMAT, obj, NULL, "cannot open attribute %s", name);
    hid_t space = H5Aget_space(*attr);
    hssize_t npoints = space >= 0 ? H5Sget_simple_extent_npoints(space) : -1;
    if (space >= 0) H5Sclose(space);
    if (npoints != 1) {
        ad_h5_close_quietly(*attr);
        *attr = -1;
        return ad_h5_fail(AD_ERR_FORMAT, obj, NULL, "attribute %s holds %lld values, expected 1",
                          name, (long long)npoints);
    }
    *ftype = H5Aget_type(*attr);
    *cls = *ftype >= 0 ? H5Tget_class(*ftype) : H5T_NO_CLASS;
    if (*ftype < 0 || *cls == H5T_NO_CLASS) {
        st = ad_h5_fail(AD_ERR_FORMAT, obj, NULL, "cannot read the type of attribute %s", name);
        ad_h5_close_quietly(*ftype);
        ad_h5_close_quietly(*attr);
        *attr = *ftype = -1;
        return st;
    }
    return AD_OK;
}

static AdStatus attr_read_number(hid_t obj, const char *name, int want_int, hid_t mtype,
                                 void *out) {
    hid_t attr, ftype;
    H5T_class_t cls;
    AdStatus st = attr_open_scalar(obj, name, &attr, &ftype, &cls);
    if (st != AD_OK) return st;
    if (cls != H5T_INTEGER && (want_int || cls != H5T_FLOAT))
        st = ad_h5_fail(AD_ERR_FORMAT, obj, NULL, "attribute %s is not %s", name,
                        want_int ? "an integer" : "a number");
    else if (H5Aread(attr, mtype, out) < 0)
        st = ad_h5_fail(AD_ERR_FORMAT, obj, NULL, "cannot read attribute %s", name);
    ad_h5_close_quietly(ftype);
    ad_h5_close_quietly(attr);
    return st;
}

AdStatus ad_h5_attr_read_i64(hid_t obj, const char *name, int64_t *v) {
    return attr_read_number(obj, name, 1, H5T_NATIVE_INT64, v);
}

AdStatus ad_h5_attr_read_f64(hid_t obj, const char *name, double *v) {
    return attr_read_number(obj, name, 0, H5T_NATIVE_DOUBLE, v);
}

typedef struct {
    size_t limit; /* largest allocation granted, bytes */
    int refused;
} VlenLimit;

static void *limited_alloc(size_t size, void *info) {
    VlenLimit *l = info;
    if (size > l->limit) {
        l->refused = 1;
        return NULL;
    }
    return malloc(size ? size : 1);
}

static void limited_free(void *p, void *info) {
    (void)info;
    free(p);
}

/* Reads one string element of file type ftype into a malloc'd copy, refusing more than
 * max_len bytes. It comes from attribute id of loc (attr names it) or, if attr is NULL,
 * from dataset id, link `name` of loc. */
static AdStatus read_one_string(hid_t id, hid_t ftype, hid_t loc, const char *name,
                                const char *attr, size_t max_len, char **out) {
    AdStatus st = AD_OK;
    hid_t mtype = -1, dxpl = -1;
    char *lib = NULL, *buf = NULL;
    int ours = 0; /* lib came from limited_alloc, not from the library's allocator */
    VlenLimit limit = {max_len + 1, 0};
    char what[300];
    if (attr) snprintf(what, sizeof what, "string attribute %s", attr);
    else snprintf(what, sizeof what, "string dataset");
    H5T_cset_t cset = H5Tget_cset(ftype);
    htri_t var = H5Tis_variable_str(ftype);
    if (cset < 0 || var < 0) {
        st = ad_h5_fail(AD_ERR_FORMAT, loc, name, "cannot read the type of %s", what);
        goto done;
    }
    if (var) {
        mtype = vlen_string_type(cset);
        if (mtype < 0) {
            st = ad_h5_fail(AD_ERR_HDF5, loc, name, "cannot make a type to read %s", what);
            goto done;
        }
        herr_t r;
        if (attr) {
            r = H5Aread(id, mtype, &lib);
        } else {
            /* Dataset strings come through our allocator, which refuses oversized ones. */
            dxpl = H5Pcreate(H5P_DATASET_XFER);
            if (dxpl < 0 || H5Pset_vlen_mem_manager(dxpl, limited_alloc, &limit, limited_free,
                                                    &limit) < 0) {
                st = ad_h5_fail(AD_ERR_HDF5, loc, name, "cannot set up reading %s", what);
                goto done;
            }
            r = H5Dread(id, mtype, H5S_ALL, H5S_ALL, dxpl, &lib);
            ours = 1;
        }
        if (r < 0 && limit.refused) {
            st = ad_h5_fail(AD_ERR_FORMAT, loc, name, "%s exceeds the limit of %zu bytes", what,
                            max_len);
            goto done;
        }
        if (r < 0) {
            st = ad_h5_fail(AD_ERR_FORMAT, loc, name, "cannot read %s", what);
            goto done;
        }
        size_t len = lib ? strlen(lib) : 0;
        if (len > max_len) {
            st = ad_h5_fail(AD_ERR_FORMAT, loc, name, "%s of %zu bytes exceeds the limit of %zu "
                            "bytes", what, len, max_len);
            goto done;
        }
        buf = ad_malloc(len + 1, what);
        if (!buf) {
            st = AD_ERR_NOMEM;
            goto done;
        }
        if (len) memcpy(buf, lib, len);
        buf[len] = '\0';
    } else {
        size_t size = H5Tget_size(ftype);
        if (size == 0 || size > max_len) {
            st = ad_h5_fail(AD_ERR_FORMAT, loc, name, "fixed-length %s of %zu bytes is empty or "
                            "exceeds the limit of %zu bytes", what, size, max_len);
            goto done;
        }
        mtype = H5Tcopy(H5T_C_S1);
        if (mtype < 0 || H5Tset_size(mtype, size + 1) < 0 || H5Tset_cset(mtype, cset) < 0 ||
            H5Tset_strpad(mtype, H5T_STR_NULLTERM) < 0) {
            st = ad_h5_fail(AD_ERR_HDF5, loc, name, "cannot make a type to read %s", what);
            goto done;
        }
        buf = ad_calloc(size + 1, 1, what);
        if (!buf) {
            st = AD_ERR_NOMEM;
            goto done;
        }
        herr_t r = attr ? H5Aread(id, mtype, buf)
                        : H5Dread(id, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
        if (r < 0) {
            st = ad_h5_fail(AD_ERR_FORMAT, loc, name, "cannot read %s", what);
            goto done;
        }
        buf[size] = '\0';
    }
done:
    if (lib && ours) free(lib);
    else if (lib) H5free_memory(lib);
    ad_h5_close_quietly(dxpl);
    ad_h5_close_quietly(mtype);
    if (st != AD_OK) {
        free(buf);
        buf = NULL;
    }
    *out = buf;
    return st;
}

AdStatus ad_h5_attr_read_str(hid_t obj, const char *name, size_t max_len, char **out) {
    *out = NULL;
    hid_t attr, ftype;
    H5T_class_t cls;
    AdStatus st = attr_open_scalar(obj, name, &attr, &ftype, &cls);
    if (st != AD_OK) return st;
    if (cls != H5T_STRING)
        st = ad_h5_fail(AD_ERR_FORMAT, obj, NULL, "attribute %s is not a string", name);
    else
        st = read_one_string(attr, ftype, obj, NULL, name, max_len, out);
    ad_h5_close_quietly(ftype);
    ad_h5_close_quietly(attr);
    return st;
}

/* ---------------------------------------------------------------- numeric datasets */

/* Chunk of about CHUNK_BYTES: whole trailing dimensions, a slice of the first
 * dimension that does not fit whole. */
static void choose_chunk(int rank, const hsize_t *shape, size_t elem, hsize_t *chunk) {
    hsize_t target = CHUNK_BYTES / elem;
    for (int d = 0; d < rank; d++) chunk[d] = shape[d];
    for (int d = 0; d < rank; d++) {
        hsize_t rest = 1;
        for (int k = d + 1; k < rank; k++) rest *= shape[k];
        if (rest <= target && shape[d] <= target / rest) break;
        if (rest <= target) {
            chunk[d] = target / rest;
            break;
        }
        chunk[d] = 1;
    }
}

/* A dataset creation property list with chunk dims and the three filters. */
static hid_t filtered_dcpl(int rank, const hsize_t *chunk) {
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (dcpl < 0) return -1;
    if (H5Pset_chunk(dcpl, rank, chunk) < 0 || H5Pset_shuffle(dcpl) < 0 ||
        H5Pset_deflate(dcpl, DEFLATE_LEVEL) < 0 || H5Pset_fletcher32(dcpl) < 0) {
        H5Pclose(dcpl);
        return -1;
    }
    return dcpl;
}

static int valid_type(AdH5Type t) { return (unsigned)t <= AD_H5_I8; }

AdStatus ad_h5_dataset_write(hid_t loc, const char *name, hid_t ftype, hid_t mtype, hid_t space,
                             hid_t dcpl, const void *data, const char *noun) {
    AdStatus st = AD_OK;
    hid_t dset = H5Dcreate2(loc, name, ftype, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (dset < 0) return ad_h5_fail(AD_ERR_IO, loc, name, "cannot create %s", noun);
    if (data && H5Dwrite(dset, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) {
        st = ad_h5_fail(AD_ERR_IO, loc, name, "cannot write %s", noun);
        ad_h5_close_quietly(dset);
        return st;
    }
    if (H5Dclose(dset) < 0) st = ad_h5_fail(AD_ERR_IO, loc, name, "cannot close %s", noun);
    return st;
}

AdStatus ad_h5_write_array(hid_t loc, const char *name, AdH5Type type, int rank,
                           const hsize_t *shape, const void *data) {
    if (rank < 1 || rank > AD_H5_MAX_RANK || !valid_type(type))
        return ad_h5_fail(AD_ERR_ARG, loc, name, "bad rank %d or type %d", rank, (int)type);
    AdStatus st;
    hid_t space = -1, dcpl = -1;
    hsize_t n = 1, chunk[AD_H5_MAX_RANK];
    for (int i = 0; i < rank; i++) n *= shape[i];
    if (n > 0 && !data) return ad_h5_fail(AD_ERR_ARG, loc, name, "no data to write");
    space = H5Screate_simple(rank, shape, NULL);
    if (n > 0) {
        choose_chunk(rank, shape, type_ids(type).size, chunk);
        dcpl = filtered_dcpl(rank, chunk);
    } else {
        dcpl = H5Pcreate(H5P_DATASET_CREATE);
    }
    if (space < 0 || dcpl < 0)
        st = ad_h5_fail(AD_ERR_HDF5, loc, name, "cannot set up the dataspace or filters of the dataset");
    else
        st = ad_h5_dataset_write(loc, name, file_type(type), mem_type(type), space, dcpl,
                                 n > 0 ? data : NULL, "dataset");
    ad_h5_close_quietly(dcpl);
    ad_h5_close_quietly(space);
    return st;
}

/* Opens dataset `name` (missing: AD_ERR_FORMAT) and reads its rank and dims. */
static AdStatus dataset_open(hid_t loc, const char *name, int max_rank, hid_t *dset, int *rank,
                             hsize_t *shape) {
    *dset = -1;
    int exists;
    AdStatus st = ad_h5_exists(loc, name, &exists);
    if (st != AD_OK) return st;
    if (!exists) return ad_h5_fail(AD_ERR_FORMAT, loc, name, "missing dataset");
    *dset = H5Dopen2(loc, name, H5P_DEFAULT);
    if (*dset < 0) return ad_h5_fail(AD_ERR_FORMAT, loc, name, "cannot open dataset");
    hid_t space = H5Dget_space(*dset);
    int r = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
    if (r >= 0 && r <= max_rank && H5Sget_simple_extent_dims(space, shape, NULL) < 0) r = -1;
    if (space >= 0) H5Sclose(space);
    if (r < 0) st = ad_h5_fail(AD_ERR_FORMAT, loc, name, "cannot read the shape of dataset");
    else if (r > max_rank)
        st = ad_h5_fail(AD_ERR_FORMAT, loc, name, "dataset has rank %d, at most %d expected", r,
                        max_rank);
    if (st != AD_OK) {
        ad_h5_close_quietly(*dset);
        *dset = -1;
        return st;
    }
    *rank = r;
    return AD_OK;
}

AdStatus ad_h5_array_shape(hid_t loc, const char *name, int max_rank, int *rank,
                           hsize_t *shape) {
    hid_t dset;
    AdStatus st = dataset_open(loc, name, max_rank, &dset, rank, shape);
    if (st == AD_OK) ad_h5_close_quietly(dset);
    return st;
}

AdStatus ad_h5_read_array(hid_t loc, const char *name, AdH5Type type, int rank,
                          const hsize_t *shape, void *data) {
    if (rank < 1 || rank > AD_H5_MAX_RANK || !valid_type(type))
        return ad_h5_fail(AD_ERR_ARG, loc, name, "bad rank %d or type %d", rank, (int)type);
    hid_t dset, ftype = -1;
    int found_rank;
    hsize_t found[AD_H5_MAX_RANK];
    AdStatus st = dataset_open(loc, name, AD_H5_MAX_RANK, &dset, &found_rank, found);
    if (st != AD_OK) return st;
    int same = found_rank == rank;
    hsize_t n = 1;
    for (int i = 0; i < rank; i++) {
        n *= shape[i];
        if (same && found[i] != shape[i]) same = 0;
    }
    if (!same) {
        char want[256], got[256];
        ad_h5_shape_text(want, sizeof want, rank, shape);
        ad_h5_shape_text(got, sizeof got, found_rank, found);
        st = ad_h5_fail(AD_ERR_FORMAT, loc, name, "dataset has shape %s, expected %s", got, want);
        goto done;
    }
    ftype = H5Dget_type(dset);
    H5T_class_t cls = ftype >= 0 ? H5Tget_class(ftype) : H5T_NO_CLASS;
    H5T_class_t want_cls = is_float_type(type) ? H5T_FLOAT : H5T_INTEGER;
    if (cls != want_cls) {
        st = ad_h5_fail(AD_ERR_FORMAT, loc, name, "dataset does not hold %s",
                        want_cls == H5T_FLOAT ? "floating-point numbers" : "integers");
        goto done;
    }
    if (n > 0 && H5Dread(dset, mem_type(type), H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
        st = ad_h5_fail(AD_ERR_FORMAT, loc, name, "cannot read dataset (damaged file?)");
done:
    ad_h5_close_quietly(ftype);
    ad_h5_close_quietly(dset);
    return st;
}

AdStatus ad_h5_write_floats(hid_t loc, const char *name, int rank, const hsize_t *shape,
                            const float *data) {
    return ad_h5_write_array(loc, name, AD_H5_F32, rank, shape, data);
}

AdStatus ad_h5_read_floats(hid_t loc, const char *name, int rank, const hsize_t *shape,
                           float *data) {
    return ad_h5_read_array(loc, name, AD_H5_F32, rank, shape, data);
}

/* ---------------------------------------------------------------- tables */

AdStatus ad_h5_table_create(hid_t loc, const char *name, AdH5Type type, hsize_t ncols,
                            hsize_t chunk_rows) {
    if (!valid_type(type) || chunk_rows < 1)
        return ad_h5_fail(AD_ERR_ARG, loc, name, "bad type %d or chunk_rows %llu for a table",
                          (int)type, (unsigned long long)chunk_rows);
    AdStatus st;
    int rank = ncols ? 2 : 1;
    hsize_t dims[2] = {0, ncols}, maxdims[2] = {H5S_UNLIMITED, ncols};
    hsize_t chunk[2] = {chunk_rows, ncols};
    hid_t space = H5Screate_simple(rank, dims, maxdims);
    hid_t dcpl = filtered_dcpl(rank, chunk);
    if (space < 0 || dcpl < 0)
        st = ad_h5_fail(AD_ERR_HDF5, loc, name, "cannot set up the dataspace or filters of the table");
    else
        st = ad_h5_dataset_write(loc, name, file_type(type), -1, space, dcpl, NULL, "table");
    ad_h5_close_quietly(dcpl);
    ad_h5_close_quietly(space);
    return st;
}

AdStatus ad_h5_table_append(hid_t loc, const char *name, AdH5Type type, hsize_t nrows,
                            hsize_t ncols, const void *rows) {
    if (!valid_type(type)) return ad_h5_fail(AD_ERR_ARG, loc, name, "bad type %d for a table", (int)type);
    if (nrows == 0) return AD_OK;
    hid_t dset, fspace = -1, mspace = -1;
    int rank;
    hsize_t dims[AD_H5_MAX_RANK];
    AdStatus st = dataset_open(loc, name, 2, &dset, &rank, dims);
    if (st != AD_OK) return st;
    if (rank != (ncols ? 2 : 1) || (rank == 2 && dims[1] != ncols)) {
        st = ad_h5_fail(AD_ERR_ARG, loc, name, "cannot append rows of %llu columns: the table has another width",
                        (unsigned long long)ncols);
        goto done;
    }
    hsize_t start[2] = {dims[0], 0}, count[2] = {nrows, ncols}, grown[2] = {dims[0] + nrows, ncols};
    if (H5Dset_extent(dset, grown) < 0) {
        st = ad_h5_fail(AD_ERR_IO, loc, name, "cannot extend table");
        goto done;
    }
    fspace = H5Dget_space(dset);
    mspace = H5Screate_simple(rank, count, NULL);
    if (fspace < 0 || mspace < 0 ||
        H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count, NULL) < 0) {
        st = ad_h5_fail(AD_ERR_HDF5, loc, name, "cannot select the new rows of the table");
        goto done;
    }
    if (H5Dwrite(dset, mem_type(type), mspace, fspace, H5P_DEFAULT, rows) < 0) {
        st = ad_h5_fail(AD_ERR_IO, loc, name, "cannot write rows of the table");
        goto done;
    }
    hid_t d = dset;
    dset = -1;
    if (H5Dclose(d) < 0) st = ad_h5_fail(AD_ERR_IO, loc, name, "cannot close table");
done:
    ad_h5_close_quietly(mspace);
    ad_h5_close_quietly(fspace);
    ad_h5_close_quietly(dset);
    return st;
}

AdStatus ad_h5_table_rows(hid_t loc, const char *name, hsize_t *nrows) {
    int rank = 0;
    hsize_t dims[2];
    AdStatus st = ad_h5_array_shape(loc, name, 2, &rank, dims);
    *nrows = st == AD_OK && rank >= 1 ? dims[0] : 0;
    if (st == AD_OK && rank < 1) return ad_h5_fail(AD_ERR_FORMAT, loc, name, "table is a scalar");
    return st;
}

/* ---------------------------------------------------------------- string datasets */

AdStatus ad_h5_write_string(hid_t loc, const char *name, const char *s) {
    AdStatus st;
    hid_t type = vlen_string_type(H5T_CSET_UTF8), space = H5Screate(H5S_SCALAR);
    if (type < 0 || space < 0)
        st = ad_h5_fail(AD_ERR_HDF5, loc, name, "cannot make a string type for the dataset");
    else
        st = ad_h5_dataset_write(loc, name, type, type, space, H5P_DEFAULT, &s, "string dataset");
    ad_h5_close_quietly(space);
    ad_h5_close_quietly(type);
    return st;
}

AdStatus ad_h5_write_strings(hid_t loc, const char *name, size_t n, char *const *strs) {
    const char **v = ad_calloc(n > 0 ? n : 1, sizeof *v, "string dataset");
    if (!v) return AD_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) v[i] = strs[i] ? strs[i] : "";
    AdStatus st;
    hsize_t dims = n;
    hid_t type = vlen_string_type(H5T_CSET_UTF8), space = -1;
    if (type < 0)
        st = ad_h5_fail(AD_ERR_HDF5, loc, name, "cannot make a string type for the dataset");
    else if ((space = H5Screate_simple(1, &dims, NULL)) < 0)
        st = ad_h5_fail(AD_ERR_HDF5, loc, name, "cannot set up the dataspace of the dataset");
    else
        st = ad_h5_dataset_write(loc, name, type, type, space, H5P_DEFAULT, n > 0 ? v : NULL,
                                 "dataset");
    ad_h5_close_quietly(space);
    ad_h5_close_quietly(type);
    free(v);
    return st;
}

AdStatus ad_h5_read_string(hid_t loc, const char *name, size_t max_len, char **out) {
    *out = NULL;
    hid_t dset, ftype = -1, space = -1;
    int rank;
    hsize_t dims[AD_H5_MAX_RANK];
    AdStatus st = dataset_open(loc, name, AD_H5_MAX_RANK, &dset, &rank, dims);
    if (st != AD_OK) return st;
    ftype = H5Dget_type(dset);
    space = H5Dget_space(dset);
    hssize_t npoints = space >= 0 ? H5Sget_simple_extent_npoints(space) : -1;
    if (ftype < 0 || H5Tget_class(ftype) != H5T_STRING)
        st = ad_h5_fail(AD_ERR_FORMAT, loc, name, "dataset is not a string");
    else if (npoints != 1)
        st = ad_h5_fail(AD_ERR_FORMAT, loc, name, "dataset holds %lld strings, expected 1",
                        (long long)npoints);
    else
        st = read_one_string(dset, ftype, loc, name, NULL, max_len, out);
    ad_h5_close_quietly(space);
    ad_h5_close_quietly(ftype);
    ad_h5_close_quietly(dset);
    return st;
}
