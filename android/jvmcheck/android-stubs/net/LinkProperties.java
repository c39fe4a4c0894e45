package android.net;
public final class LinkProperties { public java.util.List<LinkAddress> getLinkAddresses() { return null; } }
