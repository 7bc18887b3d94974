"""The stubs in python-plugins/covet-stubs describe the real package: the
same public names, and for every function and method the same parameter
names, so an editor never suggests a call the host would refuse."""

import ast
import inspect
import unittest

from support import ROOT, covet

STUB = ROOT / "python-plugins" / "covet-stubs" / "covet" / "__init__.pyi"
HTTP_STUB = STUB.parent / "http.pyi"
TRACE_STUB = STUB.parent / "trace.pyi"
FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)


def stub_tree(path=STUB):
    return ast.parse(path.read_text(encoding="utf-8"))


def stub_classes(path=STUB):
    return {node.name: node for node in stub_tree(path).body if isinstance(node, ast.ClassDef)}


def stub_functions(path=STUB):
    return {node.name: node for node in stub_tree(path).body if isinstance(node, FUNCTIONS)}


def stub_aliases(path=STUB):
    """Module-level `Alias = Name` assignments: alias → the name it points to."""
    return {node.targets[0].id: node.value.id for node in stub_tree(path).body
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Name)}


def stub_all(path=STUB):
    declared = next(n for n in stub_tree(path).body if isinstance(n, ast.Assign) and n.targets[0].id == "__all__")
    return sorted(ast.literal_eval(declared.value))


def real_params(fn) -> list:
    return [p for p in inspect.signature(fn).parameters if p != "self"]


def stub_params(fn: ast.AST) -> list:
    args = fn.args
    named = args.posonlyargs + args.args + ([args.vararg] if args.vararg else []) + args.kwonlyargs
    named += [args.kwarg] if args.kwarg else []
    return [a.arg for a in named if a.arg != "self"]


class Stubs(unittest.TestCase):
    def test_stubs_and_package_export_the_same_names(self):
        self.assertEqual(stub_all(), sorted(covet.__all__))
        stubbed = set(stub_classes()) | set(stub_functions()) | set(stub_aliases()) | {"http", "trace"}
        self.assertEqual(stubbed & set(covet.__all__), set(covet.__all__))
        self.assertEqual(stub_all(HTTP_STUB), sorted(covet.http.__all__))
        self.assertEqual(stub_all(TRACE_STUB), sorted(covet.trace.__all__))
        self.assertTrue((STUB.parent / "py.typed").exists())

    def test_stubbed_aliases_are_the_same_objects(self):
        self.assertEqual(stub_aliases(), {"CovetPy": "Covet"})
        for alias, name in stub_aliases().items():
            self.assertIs(getattr(covet, alias), getattr(covet, name), alias)

    def test_every_stubbed_function_has_the_real_parameter_names(self):
        for path, module in ((STUB, covet), (HTTP_STUB, covet.http), (TRACE_STUB, covet.trace)):
            for name, fn in stub_functions(path).items():
                self.assertEqual(stub_params(fn), real_params(getattr(module, name)), f"{module.__name__}.{name}")

    def test_every_stubbed_method_has_the_real_parameter_names(self):
        classes = [(name, node, covet) for name, node in stub_classes().items()]
        classes += [(name, node, covet.http) for name, node in stub_classes(HTTP_STUB).items()]
        for name, node, module in classes:
            real_class = getattr(module, name)
            for fn in (n for n in node.body if isinstance(n, FUNCTIONS)):
                real = getattr(real_class, fn.name)
                if isinstance(real, property) or fn.name in ("__aexit__",):
                    continue
                real_params = [p for p in inspect.signature(real).parameters if p != "self"]
                if fn.name in ("get",) and name == "Headers":
                    real_params = ["name", "default"]  # one overload per arity
                    self.assertTrue(set(stub_params(fn)) <= set(real_params), f"{name}.{fn.name}")
                    continue
                self.assertEqual(stub_params(fn), real_params, f"{name}.{fn.name}")


if __name__ == "__main__":
    unittest.main()
