#!/usr/bin/env python3
"""Java stand-ins for the Android SDK classes a set of Kotlin sources uses, generated from the API 36 stubs of
`chaquopy-stubs-android` (.pyi files generated from the real android.jar: every public class, constructor,
method and field with its parameter types).

    gen-stubs.py STUBS_DIR OUT_DIR SOURCE_DIR... [--extra android.pkg.Class ...]

STUBS_DIR is where `pip install --target` put the package (it holds `android-stubs/`). The classes are those the
sources name (`android.x.Y` in imports or qualified uses, plus --extra), their nested classes, and their
supertypes, transitively. Every member whose signature only uses generated or JDK types is emitted with its
real name, parameter types and static-ness; members using other types are left out (so calling them does not
compile: add the type with --extra or an import). kotlinc then checks each call against API 36.

What the .pyi stubs do not say, and how it is handled (documented in android/README.md):
- primitive return and field types: `int` may be Java int, long, short or byte, `float` float or double. Taken
  as int and float, except the entries of RETURN_OVERRIDES.
- interface or class: the stubs write both as classes. A class without a public constructor, without static
  methods and instance fields, whose methods' parameters carry no names (android.jar has names only for methods
  with a body) is taken for an interface; INTERFACES and CLASSES override that.
- abstract and final: not known; every class method gets a body and nothing is final (so a missing override of
  an abstract method, or an override of a final one, is not caught here).
- inner classes: known when the constructor takes the outer instance (`this_0`); other nested classes static.
- nullability: `X | None` becomes @androidx.annotation.RecentlyNullable, as in android.jar (kotlinc warns).
- API levels: not in the stubs (all of API 36); the README lists the calls that need more than minSdk.
"""

import os
import re
import subprocess
import sys
import tempfile

# Known interfaces and classes the heuristic would get wrong (none needed so far beyond these).
INTERFACES = {
    "android.os.IBinder", "android.os.IInterface", "android.os.Parcelable", "android.content.ComponentCallbacks",
    "android.content.ComponentCallbacks2", "android.content.DialogInterface", "android.view.View.OnClickListener",
    "android.content.SharedPreferences", "android.content.SharedPreferences.Editor", "android.text.Editable",
    "android.view.Window.Callback", "android.view.KeyEvent.Callback", "android.view.LayoutInflater.Factory",
    "android.view.LayoutInflater.Factory2", "android.view.View.OnCreateContextMenuListener",
    "android.view.ViewParent", "android.view.ViewManager", "android.text.TextWatcher", "android.text.Spannable",
    "android.text.Spanned", "android.text.GetChars", "android.text.InputFilter",
}
CLASSES = {"android.content.Context", "android.app.Service", "android.os.Build", "android.os.Build.VERSION",
           "android.os.Build.VERSION_CODES", "android.security.KeyChain"}

# (class, method) -> Java return type, where the stub's `int`/`float` is really long/double/short...
RETURN_OVERRIDES = {
    ("android.os.SystemClock", "elapsedRealtime"): "long",
    ("android.os.SystemClock", "uptimeMillis"): "long",
    ("android.os.SystemClock", "elapsedRealtimeNanos"): "long",
    ("android.os.ParcelFileDescriptor", "getStatSize"): "long",
    ("android.content.res.AssetManager.AssetInputStream", "skip"): "long",
    ("android.net.Network", "getNetworkHandle"): "long",
    ("android.app.Notification.Builder", "setWhen"): None,  # takes long (parameter types are exact)
}
RETURN_OVERRIDES[("*", "charAt")] = "char"  # CharSequence.charAt(int): chaquopy shows a Java char as str
FIELD_OVERRIDES = {
    ("android.app.Notification", "when"): "long",
}

PRIMS = {"java.jint": "int", "java.jlong": "long", "java.jshort": "short", "java.jbyte": "byte",
         "java.jchar": "char", "java.jfloat": "float", "java.jdouble": "double", "java.jboolean": "boolean"}
ARRAYS = {"JavaArrayJByte": "byte", "JavaArrayJInt": "int", "JavaArrayJLong": "long", "JavaArrayJShort": "short",
          "JavaArrayJChar": "char", "JavaArrayJFloat": "float", "JavaArrayJDouble": "double",
          "JavaArrayJBoolean": "boolean"}
DEFAULTS = {"int": "0", "long": "0L", "short": "(short) 0", "byte": "(byte) 0", "char": "'\\0'", "float": "0f",
            "double": "0d", "boolean": "false", "void": None}


# ---- the .pyi model --------------------------------------------------------------------------------------------

class Member:
    def __init__(self, kind, name, params, ret, static, varargs=False):
        self.kind, self.name, self.params, self.ret, self.static, self.varargs = kind, name, params, ret, static, varargs


class Cls:
    def __init__(self, pkg, qual, bases, outer):
        self.pkg, self.qual, self.bases, self.outer = pkg, qual, bases, outer  # qual: "Outer.Inner"
        self.fqn = pkg + "." + qual
        self.members, self.nested, self.typevars = [], [], []  # typevars: pyi names from typing.Generic
        self.method_typevars = {}  # pyi name -> java name (declared in the class body)

    @property
    def name(self):
        return self.qual.split(".")[-1]


def split_top(text, sep):
    out, depth, cur = [], 0, ""
    i = 0
    while i < len(text):
        c = text[i]
        if c == "[":
            depth += 1
        elif c == "]":
            depth -= 1
        if depth == 0 and text.startswith(sep, i):
            out.append(cur.strip())
            cur = ""
            i += len(sep)
            continue
        cur += c
        i += 1
    if cur.strip():
        out.append(cur.strip())
    return out


def parse_pyi(path, pkg, classes, typevar_names):
    stack = []  # (indent, Cls)
    decorators = []
    for raw in open(path, encoding="utf-8"):
        line = raw.rstrip("\n")
        if not line.strip() or line.strip().startswith("import "):
            continue
        indent = len(line) - len(line.lstrip())
        text = line.strip()
        while stack and indent <= stack[-1][0]:
            stack.pop()
        m = re.match(r"(_\w+) = typing\.TypeVar\('[^']*'\)\s*#\s*<(\w+)>", text)
        if m:
            typevar_names[(path, m.group(1))] = m.group(2)
            if stack:
                stack[-1][1].method_typevars[m.group(1)] = m.group(2)
            continue
        m = re.match(r"class (\w+)\((.*)\):$", text)
        if m:
            outer = stack[-1][1] if stack else None
            qual = (outer.qual + "." if outer else "") + m.group(1)
            c = Cls(pkg, qual, [], outer)
            for b in split_top(m.group(2), ","):
                g = re.match(r"typing\.Generic\[(.*)\]$", b)
                if g:
                    c.typevars = split_top(g.group(1), ",")
                else:
                    c.bases.append(b)
            if outer:
                outer.nested.append(c)
            classes[c.fqn] = c
            c.path = path
            stack.append((indent, c))
            decorators = []
            continue
        if not stack:
            continue
        cls = stack[-1][1]
        if text.startswith("@"):
            decorators.append(text)
            continue
        m = re.match(r"def (\w+)\((.*)\)\s*->\s*(.*):\s*\.\.\.$", text)
        if m:
            name, args, ret = m.groups()
            static = "@staticmethod" in decorators
            decorators = []
            params, varargs = [], False
            for a in split_top(args, ","):
                if a in ("self", "/", "cls"):
                    continue
                pm = re.match(r"(\*?)(\w+):\s*(.*)$", a)
                if not pm:
                    continue
                if pm.group(1):
                    varargs = True
                params.append((pm.group(2), pm.group(3)))
            kind = "ctor" if name == "__init__" else "method"
            cls.members.append(Member(kind, name, params, ret, static, varargs))
            continue
        m = re.match(r"(\w+):\s*typing\.ClassVar\[(.*)\]\s*=\s*\.\.\.$", text)
        if m:
            cls.members.append(Member("const", m.group(1), [], m.group(2), True))
            decorators = []
            continue
        m = re.match(r"(\w+):\s*(.*?)\s*=\s*\.\.\.$", text)
        if m:
            cls.members.append(Member("field", m.group(1), [], m.group(2), False))
            decorators = []


def load_stubs(stubs_dir):
    classes, typevar_names = {}, {}
    root = os.path.join(stubs_dir, "android-stubs")
    for dirpath, _, files in os.walk(root):
        if "__init__.pyi" in files:
            pkg = "android" + dirpath[len(root):].replace(os.sep, ".")
            parse_pyi(os.path.join(dirpath, "__init__.pyi"), pkg, classes, typevar_names)
    return classes, typevar_names


# ---- types -----------------------------------------------------------------------------------------------------

class Unavailable(Exception):
    pass


class Types:
    def __init__(self, classes, typevar_names):
        self.classes, self.typevar_names = classes, typevar_names
        self.included = set()
        self.jdk = {}  # name -> "interface" | "class" | "missing"
        self.jdk_wanted = set()

    def class_ref(self, name, ctx):
        """The fully qualified class a dotted stub name refers to, from class ctx, or None."""
        parts = name.split(".")
        if parts[0][0].isupper():
            # Relative to the module: a class of ctx's package (possibly nested: Outer.Inner).
            fqn = ctx.pkg + "." + name
            return fqn
        for i, p in enumerate(parts):
            if p[:1].isupper():
                return ".".join(parts)
        return None

    def java(self, expr, ctx, tvars, ret=False):
        """The Java type for a stub type expression, or raise Unavailable."""
        alts = split_top(expr, "|")
        nullable = "None" in alts
        alts = [a for a in alts if a != "None"]
        for a in alts:
            if a in PRIMS:
                return PRIMS[a], False
        if alts == ["int"] or (alts and alts[0] == "int" and ret):
            return "int", False
        if alts and alts[0] == "bool":
            return "boolean", False
        if alts and alts[0] == "float":
            return "float", False
        if alts and alts[0] == "str":
            return "java.lang.String", nullable
        if "java.lang.Object" in alts:
            return "java.lang.Object", nullable
        if len(alts) != 1:
            raise Unavailable(expr)
        return self.java_term(alts[0], ctx, tvars), nullable

    def java_term(self, term, ctx, tvars):
        m = re.match(r"([\w.]+)(?:\[(.*)\])?$", term)
        if not m:
            raise Unavailable(term)
        name, args = m.group(1), m.group(2)
        if name in tvars:
            return tvars[name]
        if name == "typing.Type":
            inner = self.java_term(args, ctx, tvars) if args else "?"
            return "java.lang.Class<" + ("?" if inner == "java.lang.Object" else box(inner)) + ">"
        if name.startswith("java.chaquopy.JavaArray"):
            short = name.split(".")[-1]
            if short in ARRAYS:
                return ARRAYS[short] + "[]"
            return self.java_term(args, ctx, tvars) + "[]"
        if name in ("int", "bool", "float", "str"):
            return {"int": "java.lang.Integer", "bool": "java.lang.Boolean", "float": "java.lang.Float",
                    "str": "java.lang.String"}[name]
        fqn = self.class_ref(name, ctx)
        if fqn is None:
            raise Unavailable(term)
        if fqn.startswith("android."):
            if fqn not in self.classes or top_of(self.classes[fqn]).fqn not in self.included:
                raise Unavailable(fqn)
        else:
            self.jdk_wanted.add(fqn)
            if self.jdk.get(fqn, "class") == "missing":
                raise Unavailable(fqn)
        targs = ""
        if args:
            targs = "<" + ", ".join(box(self.java_term(a, ctx, tvars)) for a in split_top(args, ",")) + ">"
        return fqn + targs


def box(t):
    return {"int": "Integer", "long": "Long", "short": "Short", "byte": "Byte", "char": "Character",
            "float": "Float", "double": "Double", "boolean": "Boolean"}.get(t, t)


def top_of(c):
    while c.outer:
        c = c.outer
    return c


# ---- class selection -------------------------------------------------------------------------------------------

USE = re.compile(r"(?<![\w.])android(?:\.[a-z][a-z0-9_]*)*(?:\.[A-Z]\w*)+")


def seeds_from_sources(dirs):
    found = set()
    for d in dirs:
        for dirpath, _, files in os.walk(d):
            for f in files:
                if f.endswith((".kt", ".java")):
                    for m in USE.finditer(open(os.path.join(dirpath, f), encoding="utf-8").read()):
                        found.add(m.group(0))
    return found


def resolve_seed(name, classes):
    """android.x.Y or android.x.Y.Z (a nested class or a member): the top-level class."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        fqn = ".".join(parts[:i])
        if fqn in classes:
            return top_of(classes[fqn]).fqn
    return None


def base_refs(c, types):
    refs = []
    for b in c.bases:
        m = re.match(r"([\w.]+)", b)
        fqn = types.class_ref(m.group(1), c)
        refs.append(fqn)
    return refs


def select(classes, types, seeds):
    work = [s for s in seeds if s]
    done = set()
    while work:
        fqn = work.pop()
        if fqn in done or fqn not in classes:
            continue
        done.add(fqn)
        stack = [classes[fqn]]
        while stack:
            c = stack.pop()
            stack.extend(c.nested)
            for b in base_refs(c, types):
                if b and b.startswith("android.") and b in classes:
                    work.append(top_of(classes[b]).fqn)
    return done


def is_interface(c, types):
    if c.fqn in INTERFACES:
        return True
    if c.fqn in CLASSES:
        return False
    if any(b.startswith("java.lang.Enum") for b in c.bases):
        return False
    methods = [m for m in c.members if m.kind == "method"]
    if any(m.kind in ("ctor", "field") for m in c.members) or any(m.static for m in methods):
        return False
    for b in base_refs(c, types):
        if b in types.classes and not is_interface(types.classes[b], types):
            return False
    return all(re.fullmatch(r"arg\d+", p) for m in methods for p, _ in m.params)


def is_inner(c):
    return any(m.kind == "ctor" and m.params and m.params[0][0].startswith("this_") for m in c.members)


# ---- the JDK ---------------------------------------------------------------------------------------------------

JDK_PROBE = """
public class JdkProbe {
    public static void main(String[] args) throws Exception {
        for (String n : new java.io.BufferedReader(new java.io.InputStreamReader(System.in)).lines().toList()) {
            String k;
            try {
                Class<?> c = Class.forName(n, false, JdkProbe.class.getClassLoader());
                k = java.lang.reflect.Modifier.isPublic(c.getModifiers()) ? (c.isInterface() ? "interface" : "class") : "missing";
                if (k.equals("class")) {
                    // The accessible constructor with the fewest parameters (for a subclass's super call).
                    java.lang.reflect.Constructor<?> best = null;
                    for (java.lang.reflect.Constructor<?> ctor : c.getDeclaredConstructors()) {
                        int m = ctor.getModifiers();
                        if ((java.lang.reflect.Modifier.isPublic(m) || java.lang.reflect.Modifier.isProtected(m))
                                && (best == null || ctor.getParameterCount() < best.getParameterCount())) best = ctor;
                    }
                    if (best != null && best.getParameterCount() > 0) {
                        StringBuilder sb = new StringBuilder();
                        for (Class<?> p : best.getParameterTypes()) sb.append(sb.length() == 0 ? "" : ",").append(p.getTypeName());
                        k = k + " " + sb;
                    }
                }
            } catch (Throwable e) { k = "missing"; }
            System.out.println(n + " " + k);
        }
    }
}
"""


def probe_jdk(names):
    """Which of these non-Android names exist in the running JDK, and whether each is an interface."""
    result = {}
    names = sorted(names)
    if not names:
        return result
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "JdkProbe.java")
        with open(src, "w") as f:
            f.write(JDK_PROBE)
        subprocess.run(["javac", "-d", tmp, src], check=True)
        out = subprocess.run(["java", "-cp", tmp, "JdkProbe"], input="\n".join(dotted_binary(n) for n in names),
                             capture_output=True, text=True, check=True).stdout
    for n, line in zip(names, out.splitlines()):
        fields = line.split()
        result[n] = fields[1]
        if len(fields) > 2:
            JDK_SUPER_ARGS[n] = fields[2].split(",")
    return result


JDK_SUPER_ARGS = {}  # JDK class -> parameter types of the constructor a generated subclass calls


def dotted_binary(n):
    """java.util.Map.Entry -> java.util.Map$Entry (the JVM's binary name)."""
    parts = n.split(".")
    first = next((i for i, p in enumerate(parts) if p[:1].isupper()), len(parts) - 1)
    return ".".join(parts[:first + 1]) + "".join("$" + p for p in parts[first + 1:])


# ---- emission --------------------------------------------------------------------------------------------------

def emit_class(c, types, out, depth, enclosing_tvars):
    ind = "    " * depth
    iface = is_interface(c, types)
    enum = any(b.startswith("java.lang.Enum") for b in c.bases)
    tvars = dict(enclosing_tvars)
    for tv in c.typevars:
        tvars[tv] = types.typevar_names.get((c.path, tv), "T")
    decl_tvars = ""
    if c.typevars:
        decl_tvars = "<" + ", ".join(types.typevar_names.get((c.path, tv), "T") for tv in c.typevars) + ">"
    superclass, interfaces = None, []
    if not enum:
        for b in c.bases:
            try:
                t = types.java_term(b, c, tvars)
            except Unavailable:
                continue
            raw = t.split("<")[0]
            if raw == "java.lang.Object":
                continue
            kind = ("interface" if is_interface(types.classes[raw], types) else "class") if raw in types.classes \
                else types.jdk.get(raw, "class")
            if kind == "interface":
                interfaces.append(t)
            elif superclass is None and not iface:
                superclass = t
    static = "static " if depth > 0 and not is_inner(c) and not iface else ""
    if enum:
        head = f"{ind}public {static}enum {c.name}"
    elif iface:
        head = f"{ind}public interface {c.name}{decl_tvars}"
        if interfaces:
            head += " extends " + ", ".join(interfaces)
    else:
        head = f"{ind}public {static}class {c.name}{decl_tvars}"
        if superclass:
            head += " extends " + superclass
        if interfaces:
            head += " implements " + ", ".join(interfaces)
    out.append(head + " {")
    body = ind + "    "
    if enum:
        consts = [m.name for m in c.members if m.kind == "const" and m.ret.split(".")[-1] == c.name]
        out.append(body + ", ".join(consts) + ";")
    seen = set()
    has_public_ctor = False
    for m in c.members:
        if enum and m.kind == "const" and m.ret.split(".")[-1] == c.name:
            continue
        if enum and m.name in ("values", "valueOf"):
            continue
        mtv = dict(tvars)
        own = []
        for name, jname in c.method_typevars.items():
            if any(name in (t or "") for _, t in m.params) or name in (m.ret or ""):
                mtv[name] = jname
                own.append(jname)
        try:
            line = emit_member(c, m, types, mtv, own, iface, body)
        except Unavailable:
            continue
        if line is None:
            continue
        key = line[1]
        if key in seen:
            continue
        seen.add(key)
        if m.kind == "ctor":
            has_public_ctor = True
        out.append(line[0])
    if not iface:
        # Interface methods the SDK implements somewhere up the chain (the stubs list only declared methods).
        for t_iface, iface_cls in all_interfaces(c, types, tvars):
            itv = dict(zip(iface_cls.typevars, type_args(t_iface)))
            for m in iface_cls.members:
                if m.kind != "method" or m.static:
                    continue
                itv2 = {**tvars, **{k: v for k, v in itv.items()}}
                try:
                    line = emit_member(iface_cls, m, types, itv2, [], False, body)
                except Unavailable:
                    continue
                if line and line[1] not in seen and line[1] not in inherited_keys(c, types):
                    seen.add(line[1])
                    out.append(line[0])
    if not iface and not enum and not has_public_ctor:
        # No public constructor in the SDK: a hidden one so Java adds no public default (subclasses use it).
        out.append(f"{body}protected {c.name}() {{{super_call(c, types, tvars)}}}")
    for n in c.nested:
        emit_class(n, types, out, depth + 1, tvars if not (is_interface(n, types) or not is_inner(n)) else tvars)
    out.append(ind + "}")


def type_args(t):
    m = re.match(r"[^<]*<(.*)>$", t)
    return split_top(m.group(1).replace("<", "[").replace(">", "]"), ",") if m else []


def all_interfaces(c, types, tvars):
    """(Java type, Cls) of every generated interface c implements, directly or through other interfaces."""
    found, work = [], [(b, c) for b in c.bases]
    while work:
        b, ctx = work.pop()
        try:
            t = types.java_term(b, ctx, tvars)
        except Unavailable:
            continue
        raw = t.split("<")[0]
        if raw in types.classes and is_interface(types.classes[raw], types):
            ic = types.classes[raw]
            if all(raw != f[1].fqn for f in found):
                found.append((t.replace("[", "<").replace("]", ">"), ic))
                work.extend((b2, ic) for b2 in ic.bases)
    return found


def inherited_keys(c, types):
    """Erasure keys of the methods c's generated superclasses declare (they implement the interface methods)."""
    keys = set()
    for b in c.bases:
        fqn = types.class_ref(re.match(r"([\w.]+)", b).group(1), c)
        if fqn in types.classes and not is_interface(types.classes[fqn], types):
            sup = types.classes[fqn]
            for m in sup.members:
                if m.kind == "method":
                    try:
                        r = emit_member(sup, m, types, {t: "java.lang.Object" for t in sup.method_typevars} |
                                        {t: "java.lang.Object" for t in sup.typevars}, [], False, "")
                    except Unavailable:
                        continue
                    if r:
                        keys.add(r[1])
            keys |= inherited_keys(sup, types)
    return keys


def super_call(c, types, tvars):
    """`super(...)` with typed defaults when the generated superclass has no no-arg constructor."""
    for b in c.bases:
        m = re.match(r"([\w.]+)", b)
        fqn = types.class_ref(m.group(1), c)
        if fqn in JDK_SUPER_ARGS:
            args = ", ".join(DEFAULTS.get(t) or f"({t}) null" for t in JDK_SUPER_ARGS[fqn])
            return f" super({args}); "
        if fqn in types.classes and not is_interface(types.classes[fqn], types):
            sup = types.classes[fqn]
            ctors = []
            for k in sup.members:
                if k.kind != "ctor":
                    continue
                params = [p for p in k.params if not p[0].startswith("this_")]
                try:
                    ctors.append([types.java(t, sup, tvars)[0] for _, t in params])
                except Unavailable:
                    continue
            if not ctors or any(len(p) == 0 for p in ctors):
                return ""
            args = ", ".join(DEFAULTS.get(t) or f"({erase(t)}) null" for t in ctors[0])
            return f" super({args}); "
    return ""


def erase(t):
    return re.sub(r"<.*>", "", t)


def emit_member(c, m, types, tvars, own, iface, ind):
    nullable_ann = "@androidx.annotation.RecentlyNullable "
    if m.kind in ("const", "field"):
        t, nullable = types.java(m.ret, c, tvars, ret=True)
        t = FIELD_OVERRIDES.get((c.fqn, m.name), t)
        if t == "void":
            return None
        value = DEFAULTS.get(t) or "null"
        if m.kind == "const":
            mods = "" if iface else "public static final "
            return f"{ind}{mods}{t} {m.name} = {value};", ("f", m.name)
        return f"{ind}public {t} {m.name};", ("f", m.name)
    params = [p for p in m.params if not p[0].startswith("this_")] if m.kind == "ctor" else m.params
    ptypes = []
    for i, (name, texpr) in enumerate(params):
        t, nullable = types.java(texpr, c, tvars)
        if m.varargs and i == len(params) - 1:
            t = t + "..."
        ptypes.append((("" if not nullable else nullable_ann) + t, safe(name)))
    plist = ", ".join(f"{t} {n}" for t, n in ptypes)
    key = (m.name, tuple(erase(t.replace(nullable_ann, "")) for t, _ in ptypes))
    tdecl = ("<" + ", ".join(dict.fromkeys(own)) + "> ") if own else ""
    if m.kind == "ctor":
        return f"{ind}public {tdecl}{c.name}({plist}) {{{super_call(c, types, tvars)}}}", key
    ret, nullable = ("void", False) if m.ret == "None" else types.java(m.ret, c, tvars, ret=True)
    if (c.fqn, m.name) in RETURN_OVERRIDES and RETURN_OVERRIDES[(c.fqn, m.name)]:
        ret = RETURN_OVERRIDES[(c.fqn, m.name)]
    elif ("*", m.name) in RETURN_OVERRIDES and not m.params[1:]:
        ret = RETURN_OVERRIDES[("*", m.name)]
    ann = nullable_ann if nullable else ""
    if iface and not m.static:
        return f"{ind}{ann}{tdecl}{ret} {safe(m.name)}({plist});", key
    static = "static " if m.static else ""
    default = DEFAULTS.get(ret, "null") if ret in DEFAULTS else "null"
    body = "" if ret == "void" else f" return {default}; "
    vis = "public " if not iface else ""
    return f"{ind}{vis}{static}{ann}{tdecl}{ret} {safe(m.name)}({plist}) {{{body}}}", key


JAVA_KEYWORDS = {"default", "new", "class", "package", "interface", "enum", "final", "static", "native", "int",
                 "long", "char", "byte", "short", "boolean", "float", "double", "this", "super", "goto", "const"}


def safe(n):
    return n + "_" if n in JAVA_KEYWORDS else n


def main(argv):
    args, extra = [], []
    it = iter(argv)
    for a in it:
        if a == "--extra":
            extra.append(next(it))
        else:
            args.append(a)
    if len(args) < 3:
        sys.exit(__doc__)
    stubs_dir, out_dir, sources = args[0], args[1], args[2:]
    classes, typevar_names = load_stubs(stubs_dir)
    types = Types(classes, typevar_names)
    names = seeds_from_sources(sources) | set(extra)
    seeds = set()
    for n in sorted(names):
        top = resolve_seed(n, classes)
        if top is None:
            sys.exit(f"gen-stubs: {n} is not in the Android API 36 stubs")
        seeds.add(top)
    types.included = select(classes, types, seeds)
    # The types in the seeds' signatures too (a method returning List<LinkAddress> needs LinkAddress), one level.
    used = set()
    for fqn in sorted(types.included & seeds):
        stack = [classes[fqn]]
        while stack:
            c = stack.pop()
            stack.extend(c.nested)
            for m in c.members:
                for texpr in [t for _, t in m.params] + [m.ret or ""]:
                    for ref in re.findall(r"[A-Za-z_][\w.]*", texpr):
                        fqn2 = types.class_ref(ref, c) if ref[:1].isupper() or ref.startswith("android.") else None
                        if fqn2 and fqn2.startswith("android."):
                            top = resolve_seed(fqn2, classes)
                            if top:
                                used.add(top)
    types.included = select(classes, types, seeds | used)
    # First pass collects the JDK names used, the probe says which exist; the second pass emits.
    for fqn in sorted(types.included):
        emit_class(classes[fqn], types, [], 0, {})
    types.jdk = probe_jdk(types.jdk_wanted)
    count = 0
    for fqn in sorted(types.included):
        c = classes[fqn]
        out = [f"// Generated by android/jvmcheck/gen-stubs.py from chaquopy-stubs-android (API 36). Do not edit.",
               f"package {c.pkg};", ""]
        emit_class(c, types, out, 0, {})
        path = os.path.join(out_dir, *c.pkg.split("."), c.name + ".java")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join(out) + "\n")
        count += 1
    ann = os.path.join(out_dir, "androidx", "annotation", "RecentlyNullable.java")
    os.makedirs(os.path.dirname(ann), exist_ok=True)
    with open(ann, "w") as f:
        f.write("package androidx.annotation;\n@java.lang.annotation.Retention(java.lang.annotation.RetentionPolicy.CLASS)\n"
                "public @interface RecentlyNullable {}\n")
    print(f"gen-stubs: {count} classes ({', '.join(sorted(types.included))})", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
