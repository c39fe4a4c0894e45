package android.content;
public class Intent {
    public Intent(Context packageContext, Class<?> cls) {}
    public Intent setAction(String action) { return this; }
    public Intent putExtra(String name, String value) { return this; }
    public String getStringExtra(String name) { return null; }
    public String getAction() { return null; }
}
