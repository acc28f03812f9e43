/* insn_count.c - kwsgen's QEMU plugin: count executed guest instructions, in total and inside
 * named regions.
 *
 * Why: instruction counts are the repeatable on-target cost measure under QEMU (DWT->CYCCNT
 * reads 0). Every translated instruction gets an inline 64-bit add (no helper call), so the
 * total is exact; only the marker functions of kws_profile.h get a callback, which snapshots
 * the total when a region's begin or end marker executes.
 *
 * Arguments (-plugin insn_count.so,ARG,ARG...):
 *   region=NAME:BEGIN:END   NAME's begin/end marker addresses, hex (Thumb bit cleared);
 *                           repeat per region (at most KWS_MAX_REGIONS)
 * Report, at exit, through qemu_plugin_outs (QEMU's log: `-d plugin -D FILE` sends it to
 * FILE, apart from the guest's console), one record per line:
 *   kws-insn total N
 *   kws-insn region NAME COUNT ENTRIES OPEN
 * COUNT sums the instructions from each outermost begin to its end (nested entries of the
 * same region are not double counted); OPEN is 1 when the program ended inside the region
 * (its count then runs to the exit).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kws_qemu_plugin.h"

#define KWS_MAX_REGIONS 64
#define KWS_MAX_NAME 64

KWS_PLUGIN_EXPORT int qemu_plugin_version = KWS_QEMU_PLUGIN_API_VERSION;

typedef struct {
    char name[KWS_MAX_NAME];
    uint64_t begin_addr, end_addr;
    uint64_t start, count, entries, depth;
} region_t;

static uint64_t g_total;
static region_t g_regions[KWS_MAX_REGIONS];
static int g_nregions;

static void on_begin(unsigned int vcpu, void *udata)
{
    region_t *r = udata;
    (void)vcpu;
    if (r->depth++ == 0) {
        r->start = g_total;
        r->entries++;
    }
}

static void on_end(unsigned int vcpu, void *udata)
{
    region_t *r = udata;
    (void)vcpu;
    if (r->depth > 0 && --r->depth == 0) {
        r->count += g_total - r->start;
    }
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    size_t n = qemu_plugin_tb_n_insns(tb);
    size_t i;
    int k;
    (void)id;
    for (i = 0; i < n; i++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        uint64_t pc = qemu_plugin_insn_vaddr(insn);
        qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &g_total, 1);
        for (k = 0; k < g_nregions; k++) {
            region_t *r = &g_regions[k];
            if (pc == r->begin_addr) {
                qemu_plugin_register_vcpu_insn_exec_cb(insn, on_begin, QEMU_PLUGIN_CB_NO_REGS, r);
            }
            if (pc == r->end_addr) {
                qemu_plugin_register_vcpu_insn_exec_cb(insn, on_end, QEMU_PLUGIN_CB_NO_REGS, r);
            }
        }
    }
}

static void report_at_exit(qemu_plugin_id_t id, void *udata)
{
    char line[256];
    int k;
    (void)id;
    (void)udata;
    snprintf(line, sizeof line, "kws-insn total %" PRIu64 "\n", g_total);
    qemu_plugin_outs(line);
    for (k = 0; k < g_nregions; k++) {
        region_t *r = &g_regions[k];
        uint64_t count = r->count + (r->depth > 0 ? g_total - r->start : 0);
        snprintf(line, sizeof line, "kws-insn region %.63s %" PRIu64 " %" PRIu64 " %d\n", r->name, count, r->entries,
                 r->depth > 0);
        qemu_plugin_outs(line);
    }
}

/* "NAME:BEGIN:END" -> a region; returns 0 on success. */
static int parse_region(const char *spec, region_t *r)
{
    const char *c1 = strchr(spec, ':');
    const char *c2 = c1 != NULL ? strchr(c1 + 1, ':') : NULL;
    char *end;
    size_t len;
    if (c1 == NULL || c2 == NULL || c1 == spec || (len = (size_t)(c1 - spec)) >= KWS_MAX_NAME) {
        return -1;
    }
    memset(r, 0, sizeof *r);
    memcpy(r->name, spec, len);
    r->begin_addr = strtoull(c1 + 1, &end, 16);
    if (end != c2) {
        return -1;
    }
    r->end_addr = strtoull(c2 + 1, &end, 16);
    return *end == '\0' ? 0 : -1;
}

KWS_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv)
{
    int i;
    (void)info;
    for (i = 0; i < argc; i++) {
        if (strncmp(argv[i], "region=", 7) == 0) {
            if (g_nregions == KWS_MAX_REGIONS || parse_region(argv[i] + 7, &g_regions[g_nregions]) != 0) {
                fprintf(stderr, "kws-insn: bad or too many region arguments: %s\n", argv[i]);
                return -1;
            }
            g_nregions++;
        } else {
            fprintf(stderr, "kws-insn: unknown argument: %s\n", argv[i]);
            return -1;
        }
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_atexit_cb(id, report_at_exit, NULL);
    return 0;
}
