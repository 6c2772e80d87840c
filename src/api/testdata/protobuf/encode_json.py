"""Encodes a Kubernetes JSON object into the protobuf wire format, for making test vectors.

Usage: EXTRACTED_JSON=/tmp/x.json python3 gen_schema.py   # once, to save the descriptors
       python3 encode_json.py OBJECT.json PROTO_PACKAGE /tmp/x.json > OBJECT.pb.hex
e.g.   python3 encode_json.py cronjob_rich.source.json k8s.io.api.batch.v1 /tmp/x.json
Writes only the fields present in the JSON (Go's marshaller also writes zero non-pointer fields).
"""
import json, re, struct, sys, base64, datetime
d = json.load(open(sys.argv[3]))
M, S = d['messages'], d['structs']
def gokey(n):
    pkg, name = n[1:].rsplit('.', 1)
    return 'k8s.io/' + pkg[len('k8s.io.'):].replace('.', '/') + '.' + name
def varint(v):
    v &= (1 << 64) - 1; out = b''
    while True:
        b = v & 0x7f; v >>= 7
        if v: out += bytes([b | 0x80])
        else: return out + bytes([b])
def key(n, w): return varint(n << 3 | w)
def ld(n, b): return key(n, 2) + varint(len(b)) + b
def jsonname(n, f):
    for gf in S[gokey(n)]:
        if re.search(r'protobuf:"[a-z0-9]+,%d,' % f['number'], gf['tag']):
            j = re.search(r'json:"([^"]*)"', gf['tag']).group(1).split(',')[0]
            return j
def scalar(f, v):
    t = f['type']
    if t == 9: return ld(f['number'], v.encode())
    if t == 12: return ld(f['number'], base64.b64decode(v))
    if t in (3, 5): return key(f['number'], 0) + varint(int(v))
    if t == 8: return key(f['number'], 0) + varint(1 if v else 0)
    raise Exception(t)
def special(tn, v):
    if tn.endswith('meta.v1.Time') or tn.endswith('meta.v1.MicroTime'):
        dt = datetime.datetime.fromisoformat(v.replace('Z', '+00:00'))
        s = int(dt.timestamp()); ns = dt.microsecond * 1000
        return key(1, 0) + varint(s) + (key(2, 0) + varint(ns) if ns else b'')
    if tn.endswith('resource.Quantity'): return ld(1, v.encode())
    if tn.endswith('intstr.IntOrString'):
        if isinstance(v, int): return key(1, 0) + varint(0) + key(2, 0) + varint(v) + ld(3, b'')
        return key(1, 0) + varint(1) + key(2, 0) + varint(0) + ld(3, v.encode())
    if tn.endswith('RawExtension') or tn.endswith('FieldsV1'): return ld(1, json.dumps(v).encode())
    return None
def encode(n, obj):
    out = b''
    fields = M[n]['fields']
    names = {}
    for f in fields: names[jsonname(n, f)] = f
    for k, v in obj.items():
        f = names.get(k)
        if f is None:
            # inline members
            inl = [x for x in fields if jsonname(n, x) == '']
            for x in inl:
                sub_names = [jsonname(x['type_name'], y) for y in M[x['type_name']]['fields']]
                if k in sub_names:
                    out += ld(x['number'], encode(x['type_name'], {k: v})); break
            else:
                raise Exception('no field %s in %s' % (k, n))
            continue
        tn = f.get('type_name', '')
        if f['label'] == 3 and tn and M[tn]['map_entry']:
            vf = [x for x in M[tn]['fields'] if x['number'] == 2][0]
            for mk, mv in v.items():
                if vf.get('type') == 11:
                    vb = special(vf['type_name'], mv)
                    if vb is None: vb = encode(vf['type_name'], mv)
                    vb = ld(2, vb)
                else: vb = scalar(vf, mv)
                out += ld(f['number'], ld(1, mk.encode()) + vb)
        elif f['label'] == 3:
            for item in v:
                if f.get('type') == 11:
                    b = special(tn, item)
                    out += ld(f['number'], b if b is not None else encode(tn, item))
                else: out += scalar(f, item)
        elif f.get('type') == 11:
            b = special(tn, v)
            out += ld(f['number'], b if b is not None else encode(tn, v))
        else: out += scalar(f, v)
    return out
def envelope(api_version, kind, raw):
    return b'k8s\x00' + ld(1, ld(1, api_version.encode()) + ld(2, kind.encode())) + ld(2, raw) + ld(3, b'') + ld(4, b'')
if __name__ == '__main__':
    obj = json.load(open(sys.argv[1]))
    pkg = sys.argv[2]
    raw = encode('.' + pkg + '.' + obj['kind'], {k: v for k, v in obj.items() if k not in ('apiVersion', 'kind')})
    sys.stdout.write(envelope(obj['apiVersion'], obj['kind'], raw).hex() + '\n')
