#!/usr/bin/env python3
"""Writes the LDIF fixtures of tests/sink_ldif.rs, each the way its tool writes an export.

Run from this folder: `python3 make-fixtures.py`. The files are committed; this script says
how each was made, so a reader can check a detail (a fold width, a line end) against it.
The photos are small JPEGs made with libjpeg's cjpeg (photos/*.jpg).

* ldapsearch (OpenLDAP 2.5/2.6, `ldif-wrap` at its default): lines folded to 78 columns
  (the first 78 characters, then a space and 77 per continuation line), LF line ends,
  binary and non-ASCII values (DNs too) base64 with `::`.
  - extended LDIF (no -L): `# extended LDIF` header, a `# <ufn>` comment before each
    entry, `# search reference` / `ref:` records, `# search result` / `search: 2` /
    `result: 0 Success`, `# numResponses` / `# numEntries` / `# numReferences`.
  - `-E pr=2/noprompt`: the same, one search result record per page (`search: 2`,
    `search: 3`, ...) with the paged-results `control:` line and the cookie comment.
  - `-L`: `version: 1`, the header comments without `# extended LDIF`, `# search result`
    alone, references as `# refldap://...` comments.
  - `-LLL`: entries only; references as `# refldap://...` comment lines.
* ldifde (Windows Server): `ldifde -f` writes a blank first line, CRLF line ends, every
  entry an add record (`changetype: add`), no `version:` line, lines folded to 80 columns
  (a space and 79 characters per continuation line), binary values base64, non-ASCII text
  base64 too. `ldifde -u` writes the same text as UTF-16LE with a byte order mark, and
  non-ASCII text as it is (not base64).
* OpenLDAP's test data (its tests/data/*.ldif): plain content records, lower-case
  attribute names, no version line, LF, comments at the top; photos in `jpegPhoto`.
* bom-comment-version.ldif: a UTF-8 byte order mark, a comment before `version: 1`,
  attribute options (`thumbnailPhoto;binary`), comments between attribute lines.
* change-modify.ldif: a change file (`changetype: modify`), which must be refused.
"""
import base64
import os

HERE = os.path.dirname(os.path.abspath(__file__))


def photo(name):
    with open(os.path.join(HERE, "photos", name), "rb") as f:
        return f.read()


# (dn, sAMAccountName, userPrincipalName, photo file or None, ufn comment)
USERS = [
    ("CN=Ann Example,OU=Staff,DC=example,DC=test", "ann", "ann@example.test",
     "ann.jpg", "Ann Example, Staff, example.test"),
    ("CN=Müller\\, Jörg,OU=Zürich,DC=example,DC=test", "jmueller",
     "joerg.mueller@example.test", "joerg.jpg", "Müller\\, Jörg, Zürich, example.test"),
    ("CN=Carl Nophoto,OU=Staff,DC=example,DC=test", "carl", "carl@example.test", None,
     "Carl Nophoto, Staff, example.test"),
    ("CN=Dora O'Neil,OU=Staff,DC=example,DC=test", "dora", "dora@example.test", "dora.jpg",
     "Dora O'Neil, Staff, example.test"),
]

REFS = [
    "ldap://ForestDnsZones.example.test/DC=ForestDnsZones,DC=example,DC=test",
    "ldap://DomainDnsZones.example.test/DC=DomainDnsZones,DC=example,DC=test",
    "ldap://example.test/CN=Configuration,DC=example,DC=test",
]

BASE = "DC=example,DC=test"
FILTER = "(&(objectCategory=person)(objectClass=user))"
ATTRS = "sAMAccountName userPrincipalName thumbnailPhoto"


def b64(v):
    return base64.b64encode(v).decode("ascii")


def needs_b64(v):
    return (not v.isascii()) or v[:1] in (" ", ":", "<") or v.endswith(" ")


def fold(line, first, rest):
    out = [line[:first]]
    line = line[first:]
    while line:
        out.append(" " + line[:rest])
        line = line[rest:]
    return out


def value_line(name, v, plain_unicode=False):
    if isinstance(v, bytes):
        return f"{name}:: {b64(v)}"
    if needs_b64(v) and not (plain_unicode and v.isprintable() and not needs_b64(v.encode("ascii", "replace").decode())):
        return f"{name}:: {b64(v.encode('utf-8'))}"
    return f"{name}: {v}"


def ldapsearch_entry(u, comments):
    dn, sam, upn, ph, ufn = u
    lines = []
    if comments:
        lines.append(f"# {ufn}")
    lines.append(value_line("dn", dn))
    lines.append(value_line("sAMAccountName", sam))
    lines.append(value_line("userPrincipalName", upn))
    if ph:
        lines.append(value_line("thumbnailPhoto", photo(ph)))
    out = []
    for l in lines:
        out += fold(l, 78, 77) if not l.startswith("#") else [l]
    return out + [""]


def header(extended, paged=None):
    out = ["# extended LDIF"] if extended else []
    out += ["#", "# LDAPv3", f"# base <{BASE}> with scope subtree", f"# filter: {FILTER}",
            f"# requesting: {ATTRS} "]
    if paged:
        out.append(f"# with pagedResults control: size={paged}")
    out += ["#", ""]
    return out


def write(name, lines, newline="\n", encoding="utf-8", bom=b""):
    data = bom + newline.join(lines).encode(encoding)
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(data)


def extended():
    out = header(True)
    for u in USERS:
        out += ldapsearch_entry(u, True)
    for r in REFS:
        out += ["# search reference", f"ref: {r}", ""]
    out += ["# search result", "search: 2", "result: 0 Success", "",
            f"# numResponses: {len(USERS) + len(REFS) + 1}", f"# numEntries: {len(USERS)}",
            f"# numReferences: {len(REFS)}", ""]
    write("ldapsearch-extended.ldif", out)


def paged():
    out = header(True, paged=2)
    pages = [USERS[0:2], USERS[2:4]]
    cookies = ["AQAAAAAAAAAAAAAAAAAAAA==", ""]
    # The paged-results response control: a BER SEQUENCE { size, cookie }, base64.
    for i, (page, cookie) in enumerate(zip(pages, cookies)):
        for u in page:
            out += ldapsearch_entry(u, True)
        if i == len(pages) - 1:
            for r in REFS:
                out += ["# search reference", f"ref: {r}", ""]
        raw_cookie = base64.b64decode(cookie) if cookie else b""
        body = b"\x02\x01\x00\x04" + bytes([len(raw_cookie)]) + raw_cookie
        ctrl = b"\x30" + bytes([len(body)]) + body
        out += ["# search result", f"search: {i + 2}", "result: 0 Success",
                f"control: 1.2.840.113556.1.4.319 false {b64(ctrl)}",
                f"# pagedresults: cookie={cookie}", ""]
    out += [f"# numResponses: {len(USERS) + len(REFS) + len(pages)}",
            f"# numEntries: {len(USERS)}", f"# numReferences: {len(REFS)}", ""]
    write("ldapsearch-paged.ldif", out)


def dash_l():
    out = ["version: 1", ""] + header(False)
    for u in USERS:
        out += ldapsearch_entry(u, True)
    for r in REFS:
        out += ["# search reference", f"# ref{r}", ""]
    out += ["# search result", "", f"# numResponses: {len(USERS) + len(REFS) + 1}",
            f"# numEntries: {len(USERS)}", f"# numReferences: {len(REFS)}", ""]
    write("ldapsearch-L.ldif", out)


def dash_lll():
    out = []
    for u in USERS:
        out += ldapsearch_entry(u, False)
    for r in REFS:
        out.append(f"# ref{r}")
    out.append("")
    write("ldapsearch-LLL.ldif", out)


def ldifde(unicode):
    out = [""]
    for dn, sam, upn, ph, _ in USERS:
        cn = dn.split(",OU=")[0][3:].replace("\\,", ",")
        lines = []
        if unicode:
            lines.append(f"dn: {dn}")
        else:
            lines.append(value_line("dn", dn))
        lines += ["changetype: add", "objectClass: top", "objectClass: person",
                  "objectClass: organizationalPerson", "objectClass: user"]
        lines.append(f"cn: {cn}" if unicode else value_line("cn", cn))
        lines += [f"sAMAccountName: {sam}", f"userPrincipalName: {upn}"]
        if ph:
            lines.append(value_line("thumbnailPhoto", photo(ph)))
        for l in lines:
            out += fold(l, 80, 79)
        out.append("")
    if unicode:
        write("ldifde-u.ldif", out, newline="\r\n", encoding="utf-16-le", bom=b"\xff\xfe")
    else:
        write("ldifde-f.ldif", out, newline="\r\n")


def openldap_content():
    out = ["# Test data of the content kind OpenLDAP's own tests load with slapadd:",
           "# plain records, no version line.",
           "dn: dc=example,dc=com", "objectclass: top", "objectclass: dcObject",
           "objectclass: organization", "o: Example, Inc.", "dc: example", "",
           "dn: ou=People,dc=example,dc=com", "objectclass: organizationalUnit",
           "ou: People", ""]
    people = [("Ann Example", "Example", "ann", "ann.jpg"),
              ("Jorg Mueller", "Mueller", "jmueller", "joerg.jpg"),
              ("Carl Nophoto", "Nophoto", "carl", None)]
    for cn, sn, uid, ph in people:
        lines = [f"dn: cn={cn},ou=People,dc=example,dc=com", "objectclass: inetOrgPerson",
                 f"cn: {cn}", f"sn: {sn}", f"uid: {uid}", f"mail: {uid}@example.com",
                 "description: a person of the test directory, whose description is long e"
                 "nough to be folded by the tool that wrote it"]
        if ph:
            lines.append(value_line("jpegPhoto", photo(ph)))
        for l in lines:
            out += fold(l, 78, 77)
        out.append("")
    write("openldap-content.ldif", out)


def bom_comment_version():
    out = ["# An export with a comment before the version line", "version: 1", ""]
    for dn, sam, upn, ph, _ in USERS[:2]:
        lines = [value_line("dn", dn), "# a comment between attribute lines",
                 f"sAMAccountName: {sam}"]
        if ph:
            lines.append(value_line("thumbnailPhoto;binary", photo(ph)))
        for l in lines:
            out += fold(l, 78, 77) if not l.startswith("#") else [l]
        out.append("")
    write("bom-comment-version.ldif", out, bom=b"\xef\xbb\xbf")


def change_file():
    out = ["dn: CN=Ann Example,OU=Staff,DC=example,DC=test", "changetype: modify",
           "replace: thumbnailPhoto"] + fold(value_line("thumbnailPhoto", photo("ann.jpg")), 78, 77) + ["-", ""]
    write("change-modify.ldif", out)


extended()
paged()
dash_l()
dash_lll()
ldifde(False)
ldifde(True)
openldap_content()
bom_comment_version()
change_file()
