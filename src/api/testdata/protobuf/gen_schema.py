"""Regenerates the message table in src/api/protobuf.cc from a kubectl binary.

Usage: python3 gen_schema.py [KUBECTL_BINARY] [PATH_TO_protobuf.cc]

Field numbers come from the gzipped FileDescriptorProtos that gogo-protobuf registers in the binary
(the generated.proto files of k8s.io/api and k8s.io/apimachinery, exactly as compiled in). JSON
names, omitempty and ",inline" come from the Go struct tags, and whether a field is a pointer from
the Go runtime type data, walked from the .typelink section. Every protobuf field must map to one
Go field of a matching type, or the script stops: nothing is guessed. The table is written between
the BEGIN/END GENERATED SCHEMA markers. Needs a stripped or unstripped Go 1.22-1.24 ELF binary.
"""
import zlib, re, struct, sys, json

BIN = sys.argv[1] if len(sys.argv) > 1 else '/usr/lib/google-cloud-sdk/bin/kubectl.1.33'
data = open(BIN, 'rb').read()

# ---------- minimal protobuf wire parser ----------
def varint(b, i):
    r = 0; s = 0
    while True:
        c = b[i]; i += 1
        r |= (c & 0x7f) << s; s += 7
        if c < 0x80: return r, i

def fields(b):
    i = 0; out = []
    while i < len(b):
        k, i = varint(b, i); fn, wt = k >> 3, k & 7
        if wt == 0: v, i = varint(b, i)
        elif wt == 2:
            l, i = varint(b, i); v = b[i:i+l]; i += l
        elif wt == 1: v = b[i:i+8]; i += 8
        elif wt == 5: v = b[i:i+4]; i += 4
        else: raise Exception('wt %d' % wt)
        out.append((fn, v))
    return out

def parse_field(b):
    f = {'label': 1}
    for fn, v in fields(b):
        if fn == 1: f['name'] = v.decode()
        elif fn == 3: f['number'] = v
        elif fn == 4: f['label'] = v
        elif fn == 5: f['type'] = v
        elif fn == 6: f['type_name'] = v.decode()
    return f

def parse_msg(b, prefix, out):
    name = None; flds = []; nested = []; map_entry = False
    for fn, v in fields(b):
        if fn == 1: name = v.decode()
        elif fn == 2: flds.append(parse_field(v))
        elif fn == 3: nested.append(v)
        elif fn == 7:
            for ofn, ov in fields(v):
                if ofn == 7 and ov: map_entry = True
    full = prefix + '.' + name
    out[full] = {'fields': flds, 'map_entry': map_entry}
    for n in nested: parse_msg(n, full, out)

messages = {}
files = {}
for m in re.finditer(b'\x1f\x8b\x08\x00\x00\x00\x00\x00', data):
    try:
        out = zlib.decompressobj(16 + 15).decompress(data[m.start():m.start() + 4000000])
    except Exception:
        continue
    try:
        fs = fields(out)
    except Exception:
        continue
    fname = pkg = None
    for fn, v in fs:
        if fn == 1 and isinstance(v, bytes): fname = v.decode(errors='replace')
        if fn == 2 and isinstance(v, bytes): pkg = v.decode(errors='replace')
    if not fname or not fname.startswith('k8s.io/') or not fname.endswith('generated.proto'): continue
    files[fname] = pkg
    for fn, v in fs:
        if fn == 4: parse_msg(v, '.' + pkg, messages)

# ---------- Go runtime type walk ----------
secs = {}
shoff, = struct.unpack_from('<Q', data, 0x28)
shentsize, shnum, shstrndx = struct.unpack_from('<HHH', data, 0x3a)
hdrs = [struct.unpack_from('<IIQQQQIIQQ', data, shoff + i * shentsize) for i in range(shnum)]
strtab = hdrs[shstrndx]
def secname(off): 
    s = strtab[4] + off; e = data.index(b'\0', s); return data[s:e].decode()
for h in hdrs: secs[secname(h[0])] = (h[3], h[4], h[5])  # addr, offset, size
segs = [(a, o, s) for (a, o, s) in secs.values() if a]
def off(addr):
    for a, o, s in segs:
        if a <= addr < a + s: return addr - a + o
    raise KeyError(hex(addr))
def u8(a): return data[off(a)]
def u32(a): return struct.unpack_from('<I', data, off(a))[0]
def i32(a): return struct.unpack_from('<i', data, off(a))[0]
def u64(a): return struct.unpack_from('<Q', data, off(a))[0]
def gname(a):
    p = off(a); flags = data[p]; p += 1
    l, p = varint(data, p); n = data[p:p+l].decode(errors='replace'); p += l
    tag = ''
    if flags & 2:
        tl, p = varint(data, p); tag = data[p:p+tl].decode(errors='replace')
    return n, tag, flags
types_base = secs['.rodata'][0]
def tname(t):
    so = i32(t + 40); n, _, _ = gname(types_base + so)
    if u8(t + 20) & 2: n = n[1:]
    return n
def uncommon_pkg(t, extra):
    if not (u8(t + 20) & 1): return ''
    po = i32(t + 48 + extra)
    if po == 0: return ''
    return gname(types_base + po)[0]
KIND = {1:'bool',2:'int',3:'int8',4:'int16',5:'int32',6:'int64',7:'uint',8:'uint8',9:'uint16',10:'uint32',11:'uint64',13:'float32',14:'float64',17:'array',20:'interface',21:'map',22:'ptr',23:'slice',24:'string',25:'struct'}
def kind(t): return KIND.get(u8(t + 23) & 0x1f, 'other')
extra_size = {'array': 24, 'ptr': 8, 'slice': 8, 'map': 48, 'struct': 32, 'interface': 32, 'chan': 16, 'func': 8}
# Go 1.24 swiss map type layout: Key @48, Elem @56, Group @64, Hasher @72, GroupSize @80, SlotSize @88, ElemOff @96, Flags @104 -> 112 total -> extra 64
def describe(t, depth=0):
    k = kind(t)
    d = {'kind': k, 'name': tname(t)}
    if k == 'ptr': d['elem'] = describe(u64(t + 48), depth + 1) if depth < 6 else None
    elif k == 'slice': d['elem'] = describe(u64(t + 48), depth + 1) if depth < 6 else None
    elif k == 'map':
        d['key'] = describe(u64(t + 48), depth + 1); d['elem'] = describe(u64(t + 56), depth + 1)
    return d
structs = {}
seen = set()
stack = []
tl_addr, tl_off, tl_size = secs['.typelink']
for i in range(0, tl_size, 4):
    stack.append(types_base + struct.unpack_from('<i', data, tl_off + i)[0])
while stack:
    t = stack.pop()
    if t in seen or t == 0: continue
    seen.add(t)
    try: k = kind(t)
    except KeyError: continue
    if k in ('ptr', 'slice', 'array'): stack.append(u64(t + 48))
    elif k == 'map': stack += [u64(t + 48), u64(t + 56)]
    elif k == 'struct':
        fp = u64(t + 56); n = u64(t + 64)
        flds = []
        for j in range(n):
            fa = fp + 24 * j
            fname, tag, flags = gname(u64(fa))
            ft = u64(fa + 8)
            stack.append(ft)
            flds.append({'go': fname, 'tag': tag, 'embedded': bool(flags & 8), 'type': ft})
        pkg = uncommon_pkg(t, 32)
        nm = tname(t)
        if 'protobuf:"' in ''.join(f['tag'] for f in flds):
            key = pkg + '.' + nm.split('.')[-1] if pkg else nm
            structs[key] = [dict(f, type=describe(f['type'])) for f in flds]


# ---------- schema generation ----------
import os

# EXTRACTED_JSON=path saves the descriptors and Go structs for encode_json.py.
if os.environ.get('EXTRACTED_JSON'):
    json.dump({'messages': messages, 'files': files, 'structs': structs},
              open(os.environ['EXTRACTED_JSON'], 'w'))
import os

ROOTS = [
    ('v1', 'k8s.io.api.core.v1', ['ConfigMap', 'Secret', 'Namespace', 'ServiceAccount', 'Service', 'Pod',
                                  'PodTemplate', 'Endpoints', 'Event', 'Binding', 'Node', 'PersistentVolume',
                                  'PersistentVolumeClaim', 'ReplicationController', 'ResourceQuota', 'LimitRange']),
    ('apps/v1', 'k8s.io.api.apps.v1', ['Deployment', 'ReplicaSet', 'StatefulSet', 'DaemonSet', 'ControllerRevision']),
    ('batch/v1', 'k8s.io.api.batch.v1', ['Job', 'CronJob']),
    ('coordination.k8s.io/v1', 'k8s.io.api.coordination.v1', ['Lease']),
    ('discovery.k8s.io/v1', 'k8s.io.api.discovery.v1', ['EndpointSlice']),
    ('policy/v1', 'k8s.io.api.policy.v1', ['PodDisruptionBudget', 'Eviction']),
    ('scheduling.k8s.io/v1', 'k8s.io.api.scheduling.v1', ['PriorityClass']),
    ('autoscaling/v1', 'k8s.io.api.autoscaling.v1', ['Scale', 'HorizontalPodAutoscaler']),
    ('autoscaling/v2', 'k8s.io.api.autoscaling.v2', ['HorizontalPodAutoscaler']),
    ('networking.k8s.io/v1', 'k8s.io.api.networking.v1', ['Ingress', 'IngressClass', 'NetworkPolicy']),
    ('rbac.authorization.k8s.io/v1', 'k8s.io.api.rbac.v1', ['Role', 'RoleBinding', 'ClusterRole', 'ClusterRoleBinding']),
    ('authentication.k8s.io/v1', 'k8s.io.api.authentication.v1', ['TokenRequest']),
    ('events.k8s.io/v1', 'k8s.io.api.events.v1', ['Event']),
    ('metrics.k8s.io/v1beta1', 'k8s.io.metrics.pkg.apis.metrics.v1beta1', ['NodeMetrics', 'PodMetrics']),
    # DeleteOptions is registered in every group version; "*" accepts any apiVersion.
    ('*', 'k8s.io.apimachinery.pkg.apis.meta.v1', ['DeleteOptions']),
]
SPECIAL = {
    '.k8s.io.apimachinery.pkg.apis.meta.v1.Time': 'kTime',
    '.k8s.io.apimachinery.pkg.apis.meta.v1.MicroTime': 'kMicroTime',
    '.k8s.io.apimachinery.pkg.apis.meta.v1.Duration': 'kDuration',
    '.k8s.io.apimachinery.pkg.api.resource.Quantity': 'kQuantity',
    '.k8s.io.apimachinery.pkg.util.intstr.IntOrString': 'kIntOrString',
    '.k8s.io.apimachinery.pkg.runtime.RawExtension': 'kRawJson',
    '.k8s.io.apimachinery.pkg.apis.meta.v1.FieldsV1': 'kRawJson',
}
SCALAR = {9: 'kString', 12: 'kBytes', 5: 'kInt32', 3: 'kInt64', 8: 'kBool'}
GO_SCALAR = {'kString': 'string', 'kInt32': 'int32', 'kInt64': 'int64', 'kBool': 'bool'}

def gokey(n):
    pkg, name = n[1:].rsplit('.', 1)
    return 'k8s.io/' + pkg[len('k8s.io.'):].replace('.', '/') + '.' + name

def cname(n):
    pkg, name = n[1:].rsplit('.', 1)
    parts = [p for p in pkg.split('.') if p not in ('k8s', 'io', 'api', 'apimachinery', 'pkg', 'apis')]
    out = []
    for p in parts:
        if not out or out[-1] != p: out.append(p)
    return 'k' + ''.join(p[0].upper() + p[1:] for p in out) + name

order = []
def visit(n):
    if n in order or n in SPECIAL: return
    if n not in messages: raise SystemExit('no descriptor for ' + n)
    order.append(n)
    for f in messages[n]['fields']:
        if f.get('type') == 11:
            t = f['type_name']
            if messages.get(t, {}).get('map_entry'):
                v = [x for x in messages[t]['fields'] if x['number'] == 2][0]
                if v.get('type') == 11: visit(v['type_name'])
            else:
                visit(t)
for av, pkg, kinds in ROOTS:
    for k in kinds: visit('.' + pkg + '.' + k)
all_msgs = sorted(order) + sorted(set(SPECIAL))
index = {n: i for i, n in enumerate(all_msgs)}

def fail(*a): raise SystemExit('schema: ' + ' '.join(str(x) for x in a))

field_rows = []   # (message, row text)
msg_rows = []
for n in all_msgs:
    first = len(field_rows)
    if n in SPECIAL:
        msg_rows.append((n, SPECIAL[n], first, 0)); continue
    go = structs.get(gokey(n)) or fail('no Go struct for', n)
    for f in sorted(messages[n]['fields'], key=lambda f: f['number']):
        gf = [x for x in go if re.search(r'protobuf:"[a-z0-9]+,%d,' % f['number'], x['tag'])]
        if len(gf) != 1: fail('no unique Go field for', n, f)
        gf = gf[0]
        jm = re.search(r'json:"([^"]*)"', gf['tag']) or fail('no json tag', n, gf)
        jparts = jm.group(1).split(',')
        jname, omitempty, inline = jparts[0], 'omitempty' in jparts[1:], 'inline' in jparts[1:]
        if jname == '-': fail('json:"-" field', n, gf)
        if inline != (jname == ''): fail('odd inline tag', n, gf)
        gt = gf['type']
        flags = []
        msg = 'kNoMessage'
        if f['label'] == 3 and f.get('type') == 11 and messages[f['type_name']]['map_entry']:
            shape = 'kMap'
            entry = messages[f['type_name']]['fields']
            k = [x for x in entry if x['number'] == 1][0]; v = [x for x in entry if x['number'] == 2][0]
            if k.get('type') != 9 or gt['kind'] != 'map' or gt['key']['kind'] != 'string': fail('map key', n, f)
            if v.get('type') == 11:
                value = 'kMessage'; msg = cname(v['type_name'])
                if v['type_name'] not in SPECIAL and gt['elem']['kind'] != 'struct': fail('map value', n, f, gt)
            else:
                value = SCALAR.get(v.get('type')) or fail('map value type', n, f)
                want = 'slice' if value == 'kBytes' else GO_SCALAR[value]
                if gt['elem']['kind'] != want: fail('map value Go type', n, f, gt)
        elif f['label'] == 3:
            shape = 'kRepeated'
            if gt['kind'] != 'slice': fail('repeated but Go', gt, n, f)
            el = gt['elem']
            if f.get('type') == 11:
                value = 'kMessage'; msg = cname(f['type_name'])
                if f['type_name'] not in SPECIAL and el['kind'] != 'struct': fail('repeated message Go', n, f, gt)
            else:
                value = SCALAR.get(f.get('type')) or fail('repeated type', n, f)
                want = 'slice' if value == 'kBytes' else GO_SCALAR[value]
                if el['kind'] != want: fail('repeated Go elem', n, f, gt)
        else:
            shape = 'kSingle'
            if f.get('type') == 11:
                value = 'kMessage'; msg = cname(f['type_name'])
                base = gt['elem'] if gt['kind'] == 'ptr' else gt
                if f['type_name'] not in SPECIAL and base['kind'] != 'struct': fail('message Go type', n, f, gt)
            else:
                value = SCALAR.get(f.get('type')) or fail('scalar type', n, f)
                if value == 'kBytes':
                    if gt['kind'] != 'slice': fail('bytes Go type', n, f, gt)
                    if omitempty: flags.append('kOmitZero')
                elif gt['kind'] == 'ptr':
                    if gt['elem']['kind'] != GO_SCALAR[value]: fail('pointer Go type', n, f, gt)
                else:
                    if gt['kind'] != GO_SCALAR[value]: fail('Go type', n, f, gt)
                    if omitempty: flags.append('kOmitZero')
        if inline:
            if shape != 'kSingle' or value != 'kMessage': fail('inline non-message', n, f)
            flags.append('kInline')
        field_rows.append((n, '{%d, "%s", Shape::%s, Value::%s, %s, %s}' % (
            f['number'], jname, shape, value, msg, ' | '.join(flags) or '0')))
    msg_rows.append((n, 'kNone', first, len(field_rows) - first))

out = ['// clang-format off']
out.append('// Generated by testdata/protobuf/gen_schema.py from the protobuf descriptors and Go struct tags')
out.append('// compiled into kubectl v1.33.1 (k8s.io/api and k8s.io/apimachinery v0.33). Do not edit by hand.')
out.append('enum MessageId : uint16_t {')
for n in all_msgs: out.append('  %s,' % cname(n))
out.append('  kNoMessage = 0xffff,')
out.append('};')
out.append('')
out.append('constexpr FieldSpec kFields[] = {')
last = None
for n, row in field_rows:
    if n != last:
        out.append('    // %s' % n[1:]); last = n
    out.append('    %s,' % row)
out.append('};')
out.append('')
out.append('constexpr MessageSpec kMessages[] = {')
for n, special, first, count in msg_rows:
    out.append('    {"%s", Special::%s, %d, %d},' % (n[1:], special, first, count))
out.append('};')
out.append('')
out.append('constexpr RootSpec kRoots[] = {')
for av, pkg, kinds in ROOTS:
    for k in kinds:
        out.append('    {"%s", "%s", %s},' % (av, k, cname('.' + pkg + '.' + k)))
out.append('};')
out.append('// clang-format on')
block = '\n'.join(out) + '\n'

target = sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'protobuf.cc')
src = open(target).read()
begin, end = '// BEGIN GENERATED SCHEMA\n', '// END GENERATED SCHEMA\n'
if begin not in src or end not in src: fail('markers missing in', target)
head, rest = src.split(begin, 1)
_, tail = rest.split(end, 1)
open(target, 'w').write(head + begin + block + end + tail)
print('%d messages, %d fields written to %s' % (len(all_msgs), len(field_rows), target))
