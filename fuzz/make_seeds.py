"""Writes the seed corpora under fuzz/corpus/ from committed inputs: tests/corpus/ (webhook bodies,
with a selector byte in front), config/*.toml and the docs' TOML blocks (config loader), the
templates the configs and docs use (templates), and amounts from outcome.rs's tests (amounts).
Run from anywhere: python3 fuzz/make_seeds.py. See bench/FUZZING.md for the input layouts."""
import json, os, re, tomllib, pathlib
root = pathlib.Path(__file__).resolve().parent.parent
fz = root / "fuzz" / "corpus"
for t in ["webhook_presets", "config_loader", "templates", "amounts"]:
    (fz / t).mkdir(parents=True, exist_ok=True)
    for old in (fz / t).iterdir():  # regenerated whole: no stale seeds
        old.unlink()

# --- webhook_presets: selector = preset | ct<<3 | signing<<6
CT = {"application/json": 0, "application/x-www-form-urlencoded": 1, None: 2, "": 2,
      ";charset=utf-8": 2, "application/vnd.acme.lead+json; version=2": 3, "APPLICATION/JSON": 4,
      "text/plain": 5, "application/xml": 5, "multipart/form-data; boundary=XyZ": 6,
      "application/json; charset=latin1": 0}
man = tomllib.loads((root / "tests/corpus/MANIFEST.toml").read_text())
w = fz / "webhook_presets"
for case in man["case"]:
    body = (root / "tests/corpus" / case["file"]).read_bytes()
    sel = 0 | (CT[case.get("content_type")] << 3)
    (w / ("generic-" + case["file"])).write_bytes(bytes([sel]) + body)

EMAIL = "lea@example.com"
vendor = {
 1: json.dumps({"event_id": "e1", "event_type": "form_response", "form_response": {
    "form_id": "demoForm", "token": "tok-e1", "submitted_at": "2026-11-20T09:00:00Z",
    "hidden": {"utm_source": "newsletter", "utm_medium": "email"},
    "definition": {"id": "demoForm", "title": "Demo", "fields": [
        {"id": "f1", "title": "First name", "type": "short_text", "ref": "first_name"},
        {"id": "f2", "title": "Email", "type": "email", "ref": "email"},
        {"id": "f3", "title": "Name", "type": "short_text", "ref": "r3"}]},
    "answers": [
        {"type": "text", "text": "Lea", "field": {"id": "f1", "type": "short_text", "ref": "first_name"}},
        {"type": "email", "email": EMAIL, "field": {"id": "f2", "type": "email", "ref": "email"}},
        {"type": "choices", "choices": {"labels": ["A", "B"], "other": "C"}, "field": {"id": "f4", "type": "multiple_choice", "ref": "interests"}},
        {"type": "choice", "choice": {"label": "X"}, "field": {"id": "f5", "type": "dropdown"}},
        {"type": "boolean", "boolean": True, "field": {"id": "f6", "type": "legal"}},
        {"type": "phone_number", "phone_number": "+16505550100", "field": {"id": "f7", "type": "phone_number"}},
        {"type": "text", "text": "Lea Martin", "field": {"id": "f3", "type": "short_text", "ref": "r3"}}]}}),
 2: json.dumps({"triggerType": "form_submission", "payload": {"name": "Contact Us", "siteId": "site-1",
    "id": "wf-sub-1", "formId": "form-1", "submittedAt": "2026-11-20T10:00:00.000Z",
    "data": {"First Name": "Zaphod", "email": "zaphod@example.com", "Company": "Heart of Gold", "Phone": 5550100}}}),
 3: '{"object":"page","entry":[{"id":"123","time":1502121655,"changes":[{"field":"leadgen","value":{"leadgen_id":"444444444","page_id":"123","form_id":"555555","adgroup_id":"66666","ad_id":"77777","created_time":1502121655}}]}]}',
 4: json.dumps({"lead_id": "google-lead-1", "api_version": "1.0", "form_id": 40000000001,
    "campaign_id": 12345678901, "is_test": False, "gcl_id": "EAIaIQobChMI-gclid-lea",
    "adgroup_id": 20000000002, "creative_id": 30000000003, "asset_group_id": 9,
    "user_column_data": [
        {"column_name": "Full Name", "string_value": "Lea Martin", "column_id": "FULL_NAME"},
        {"column_name": "User Email", "string_value": EMAIL, "column_id": "EMAIL"},
        {"column_name": "User Phone", "string_value": "+16505550100", "column_id": "PHONE_NUMBER"},
        {"column_name": "Budget", "string_value": 5, "column_id": "budget_q"}]}),
 5: json.dumps({"vid": 3201, "properties": {"email": {"value": "maria@example.com"}, "firstname": {"value": "Maria"},
    "company": {"value": "Globex"}}, "form-submissions": [{"conversion-id": "conv-1", "timestamp": 1717243200000,
    "form-id": "f-1", "page-url": "https://www.example.com/demo?utm_source=linkedin", "title": "Demo request"}]}),
}
names = {1: "typeform", 2: "webflow", 3: "meta_lead_ads", 4: "google_lead_form", 5: "hubspot_forms"}
for p, body in vendor.items():
    for signing, tag in [(0, "signed"), (1, "unsigned")]:
        (w / f"{names[p]}-{tag}.json").write_bytes(bytes([p | (0 << 3) | (signing << 6)]) + body.encode())
# the other event types each preset answers with Nothing
(w / "typeform-partial.json").write_bytes(bytes([1]) + b'{"event_type":"form_response_partial"}')
(w / "webflow-site-publish.json").write_bytes(bytes([2]) + b'{"triggerType":"site_publish","payload":{}}')
(w / "hubspot-array.json").write_bytes(bytes([5]) + b'[' + vendor[5].encode() + b']')
(w / "meta-handshake.txt").write_bytes(bytes([3 | (2 << 3) | (1 << 6)]) + b"hub.mode=subscribe&hub.verify_token=fuzz-verify-token&hub.challenge=1158201444")

# --- config_loader: the example configs, the docs' TOML blocks
c = fz / "config_loader"
for f in ["config/tandem.toml", "config/demo.toml"]:
    (c / pathlib.Path(f).name).write_bytes((root / f).read_bytes())
n = 0
for md in sorted(root.glob("docs/**/*.md")):
    for block in re.findall(r"```toml\n(.*?)```", md.read_text(), re.S):
        n += 1
        (c / f"doc-{md.stem}-{n}.toml").write_text(block)

# --- templates: templates \0 JSON context; fields split on \x01
tp = fz / "templates"
tmpl = [
  ["{{ lead.email }}", "{{ lead.first_name }}", "lead", "{{ lead.phone }}"],
  ['{{ lead.touchpoint.utm_source | default("direct") }}', "50% off {not a tag}", "  {{ lead.company }}  "],
  ["{% for x in lead %}{{ x }}{% endfor %}", "{{ lead[0] }}{{ lead.email | lower }}", "{{ lead.touchpoint.x.y.z | default('d') }}"],
  ["{{ lead.email | int }}", "{% if lead.custom.budget > 1000 %}big{% else %}small{% endif %}"],
  ["{{ your_email }}", "{{ given_name }}", "{{ Mobil }}", "{{ i_agree_to_be_contacted }}"],
  ["{{ lead.custom.interests | join(',') }}", "{{ lead.first_name ~ ' ' ~ lead.last_name | upper }}", "{% set y = 1 %}{{ y + lead_id }}"],
  ["{{ lead.email", "{% if %}", "{# comment #}{{ lead.custom.nested.x.y[2] }}"],
  ["{% macro m(a) %}[{{ a }}]{% endmacro %}{{ m(lead.country) }}", "{{ lead.email | replace('@', ' at ') | title }}"],
]
ctxs = [b'{"your_email":"a@b.co","given_name":"Ada"}', b'{"email":{"nested":[1.5,true]}}', b"",
        (root / "tests/corpus/ok-all-types.json").read_bytes(), b'[null,{"email":1}]']
for i, fields in enumerate(tmpl):
    (tp / f"t{i}").write_bytes("\x01".join(fields).encode() + b"\0" + ctxs[i % len(ctxs)])
for f in ["ok-all-types.json", "ok-unicode-names.json", "deep-in-lead.json", "twenty-digit-ints.json", "huge-float.json"]:
    (tp / f"ctx-{f}").write_bytes(b"{{ email }}\x01{{ custom }}\0" + (root / "tests/corpus" / f).read_bytes())

# --- amounts: selector byte then text
a = fz / "amounts"
for i, (sel, text) in enumerate([(0, "1500"), (1, "1500.5"), (0, "0.005"), (1, "-12.345"), (2, "1500"),
        (4, "1.2345"), (0, ".5"), (0, ""), (0, "1e3"), (0, "12,5"), (0, "99999999999999999999999"),
        (0, "92233720368547758.07"), (0, "-92233720368547758.08"), (2, "-9223372036854775808"),
        (4, "9223372036854775.807"), (0, " +7.999 "), (0xF0, "CHF12.50"), (0xF0, "jpy99.5")]):
    (a / f"a{i}").write_bytes(bytes([sel]) + text.encode())
